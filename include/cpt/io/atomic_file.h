#pragma once
// Whole-file writes that are either complete or absent: readers never see a
// half-written file, and a crash never destroys the previous version.

#include <string>
#include <string_view>

namespace cpt::io {

// Writes to a temporary file beside `path`, fsyncs it, renames it over `path`
// and fsyncs the directory. Throws std::runtime_error naming the path and the
// system error; the temporary file is removed on failure.
void write_file_atomic(const std::string& path, std::string_view contents);

}  // namespace cpt::io
