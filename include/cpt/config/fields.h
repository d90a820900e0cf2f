#pragma once
// Compile-time tests the config visitors use to tell sections (structs with a
// fields() member) from lists of sections and from scalars.

#include <type_traits>
#include <utility>
#include <vector>

namespace cpt::config {

struct AnyVisitor {
  template <class T>
  void operator()(const char*, T&) {}
};

template <class T, class = void>
struct is_section : std::false_type {};
template <class T>
struct is_section<T, std::void_t<decltype(std::declval<T&>().fields(std::declval<AnyVisitor&>()))>>
    : std::true_type {};

template <class T>
struct is_section_list : std::false_type {};
template <class T>
struct is_section_list<std::vector<T>> : is_section<T> {};

}  // namespace cpt::config
