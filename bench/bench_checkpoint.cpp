// Checkpoint save throughput against a raw sequential write (write + fsync)
// of the same number of bytes, in the same run, and load time.
//
// Usage: bench_checkpoint DIR [--json [PAUSE_S]]
//   --json prints one JSON line instead of the table and keeps the
//   checkpoint (its path is "checkpoint"), for scripts/bench-peers.sh to
//   hand the same tensors to its peers. PAUSE_S: before each timed write,
//   sync and wait this long, so that neither write inherits the other's
//   write-back (bench/peers.py pauses the same way).
//
// Each timed write starts right after touching and freeing 2.5 times the
// checkpoint's bytes (bench/peers.py does the same). On a virtual machine
// that hands freed memory back to its host (virtio-balloon free page
// reporting, as the machines these figures come from have), the first
// touch of a page the guest has not used lately waits for the host: 1.17 GB
// written into new tmpfs pages took 3.1 s, into pages just freed 0.35 s.
// Which writer met which was an accident of what ran before it; this way
// every writer's page cache, tmpfs pages and buffers are memory the guest
// holds, and the figures are the writers' own cost.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bench_shapes.h"
#include "cpt/model/llama.h"
#include "cpt/io/checksums.h"
#include "cpt/train/checkpoint.h"
#include "cpt/train/data_parallel.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const bool json = (argc == 3 || argc == 4) && std::string(argv[2]) == "--json";
  if (argc != 2 && !json) {
    std::fprintf(stderr, "usage: bench_checkpoint DIR [--json [PAUSE_S]]\n");
    return 2;
  }
  const double pause_s = argc == 4 ? std::stod(argv[3]) : 0.0;
  size_t prime_bytes = 0;  // set once the checkpoint's size is known
  const auto settle = [pause_s, &prime_bytes] {
    if (pause_s > 0) {
      ::sync();
      std::this_thread::sleep_for(std::chrono::duration<double>(pause_s));
    }
    void* memory = ::mmap(nullptr, prime_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) std::exit(1);
    for (size_t at = 0; at < prime_bytes; at += 4096) static_cast<volatile char*>(memory)[at] = 1;
    ::munmap(memory, prime_bytes);
  };
  const std::string dir = argv[1];
  std::filesystem::create_directories(dir);
  const cpt::model::Shape shape = cpt::bench::shape_97m();
  cpt::model::Llama model(shape);
  model->init_weights(1);
  cpt::train::NamedTensors parameters;
  for (auto& p : model->named_parameters()) parameters.emplace_back(p.key(), p.value());
  const auto group = cpt::dist::ProcessGroup::connect(cpt::dist::LaunchEnv{}, cpt::dist::Config{});
  cpt::train::DataParallel replicas(*group, parameters, true, 25 << 20);
  cpt::train::AdamW optimizer(replicas.owned_slices(), {});
  // Moments as after training, not the zeros of a fresh optimizer: a
  // virtual disk may store runs of zeros or repeated blocks for less.
  {
    torch::NoGradGuard no_grad;
    for (auto& moment : optimizer.state()) moment.values.normal_(0, 1e-3).abs_();
  }
  size_t tensor_bytes = 0;
  for (const auto& [name, p] : parameters) tensor_bytes += p.numel() * p.element_size();
  for (const auto& moment : optimizer.state()) tensor_bytes += moment.values.numel() * moment.values.element_size();
  prime_bytes = tensor_bytes * 5 / 2 / 4096 * 4096;
  cpt::train::TrainerState state;
  state.step = 1;
  const cpt::train::CheckpointPaths paths{dir + "/checkpoints"};

  settle();
  auto start = Clock::now();
  cpt::train::SaveOptions save_options;
  save_options.keep_last = 1;
  const std::string saved = cpt::train::save_checkpoint(paths, shape, replicas, optimizer, state, save_options);
  const double save_s = std::chrono::duration<double>(Clock::now() - start).count();
  uint64_t bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(saved)) {
    if (entry.is_regular_file()) bytes += entry.file_size();
  }

  // Reading every file back for its CRC-32C, which the save no longer
  // does (it checksums the bytes as it writes them). This also brings the
  // files into the page cache, as the peers' buffered writes leave theirs,
  // so that both loads below start from memory. The loads come before the
  // raw writes, whose write-back and removal would still be running.
  start = Clock::now();
  cpt::io::write_checksums(saved);
  const double checksum_s = std::chrono::duration<double>(Clock::now() - start).count();

  start = Clock::now();
  cpt::train::load_checkpoint(saved, replicas, optimizer);
  const double load_s = std::chrono::duration<double>(Clock::now() - start).count();
  start = Clock::now();
  cpt::train::verify_checkpoint(saved);
  const double verify_s = std::chrono::duration<double>(Clock::now() - start).count();

  // The checkpoint's own bytes, from memory, written sequentially in 8 MiB
  // writes to one file and fsynced: through the page cache, and with
  // O_DIRECT (what the save uses where the file system allows it).
  const uint64_t padded = (bytes + 4095) / 4096 * 4096;  // whole blocks, as O_DIRECT needs
  void* memory = nullptr;
  if (::posix_memalign(&memory, 4096, padded) != 0) return 1;
  auto* contents = static_cast<char*>(memory);
  std::memset(contents, 0, padded);
  uint64_t filled = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(saved)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    in.read(contents + filled, static_cast<std::streamsize>(entry.file_size()));
    filled += entry.file_size();
  }
  const std::string raw = dir + "/raw.bin";
  const auto raw_write = [&](int flags) {
    settle();
    const auto begin = Clock::now();
    const int fd = ::open(raw.c_str(), O_WRONLY | O_CREAT | O_TRUNC | flags, 0644);
    if (fd < 0) return -1.0;  // O_DIRECT refused here
    for (uint64_t written = 0; written < padded;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(8 << 20, padded - written));
      if (::write(fd, contents + written, n) != static_cast<ssize_t>(n)) std::exit(1);
      written += n;
    }
    ::fsync(fd);
    ::close(fd);
    std::filesystem::remove(raw);
    return std::chrono::duration<double>(Clock::now() - begin).count();
  };
  const double raw_s = raw_write(0);
  const double raw_direct_s = raw_write(O_DIRECT);
  std::free(memory);

  if (json) {
    const nlohmann::json out = {{"checkpoint", saved},   {"bytes", bytes},
                                {"save_s", save_s},      {"raw_write_s", raw_s},
                                {"raw_direct_write_s", raw_direct_s}, {"checksum_s", checksum_s},
                                {"load_s", load_s},      {"verify_s", verify_s}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("| measure | value |\n| --- | --- |\n");
  std::printf("| checkpoint (weights + AdamW moments) | %.0f MB |\n", static_cast<double>(bytes) / 1e6);
  std::printf("| save (fsynced) | %.2f s, %.0f MB/s |\n", save_s, static_cast<double>(bytes) / save_s / 1e6);
  std::printf("| raw sequential write + fsync, same bytes | %.2f s, %.0f MB/s |\n", raw_s, static_cast<double>(bytes) / raw_s / 1e6);
  std::printf("| save / raw write | %.2f (goal >= 0.70) |\n", raw_s / save_s);
  if (raw_direct_s > 0) {
    std::printf("| raw O_DIRECT write + fsync, same bytes | %.2f s, %.0f MB/s |\n", raw_direct_s,
                static_cast<double>(bytes) / raw_direct_s / 1e6);
    std::printf("| save / raw O_DIRECT write | %.2f |\n", raw_direct_s / save_s);
  }
  std::printf("| reading every file back for its CRC-32C (the save does not) | %.2f s, %.0f MB/s |\n", checksum_s,
              static_cast<double>(bytes) / checksum_s / 1e6);
  std::printf("| load (mmap, validated, copied into the model) | %.2f s |\n", load_s);
  std::printf("| verify every file's checksum (a resume, before the load) | %.2f s |\n", verify_s);
  std::filesystem::remove_all(dir);
  return 0;
}
