#pragma once
// Splitting many small matrix products across the cores. OpenBLAS threads
// each call on its own; for products a few hundred wide and head_dim deep
// the threads cost more than they bring (one OpenBLAS thread runs them as
// fast as two), but independent products on separate threads, each with a
// single-threaded BLAS, scale with the cores. OpenBLAS is found at run
// time (LibTorch links whichever BLAS the system provides); with another
// BLAS the work runs on the calling thread.

#include <cstdint>
#include <functional>
#include <string>

namespace cpt::backend {

// OpenBLAS's thread count; 0 when the process's BLAS is not OpenBLAS.
int openblas_threads();

// Threading of a CPU process, set before any work. Measured on 2 cores:
//  - after each call OpenBLAS's idle threads spin for 2^28 cycles (~0.1 s)
//    before they sleep, taking the cores from what runs next (attention's
//    per-item threads ran at half speed beside them);
//  - ATen's elementwise loops ran on one OpenMP thread, and with more,
//    OpenMP's spinning idle threads fought OpenBLAS's.
// Both libraries read their settings once, when they load (ATen's
// at::set_num_threads later was slower than OMP_NUM_THREADS at load). So
// where the BLAS is OpenBLAS, this sets whichever of
// OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles), OMP_WAIT_POLICY=PASSIVE and
// OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = the CPUs OpenBLAS finds,
// divided by LOCAL_WORLD_SIZE, the user has not set, and re-executes the
// program once (same pid, same arguments).
void configure_cpu_threads(char** argv);

// "N CPU threads (OpenBLAS M, ...settings)", for the log.
std::string describe_cpu_threads();

// Runs body(first, last) over [0, count) in contiguous parts, one per
// OpenBLAS thread, while OpenBLAS runs each call single-threaded; the
// calling thread takes the first part. Each part's thread has grad mode
// off. An exception from any part is rethrown here after all have ended.
void parallel_over_items(int64_t count, const std::function<void(int64_t first, int64_t last)>& body);

}  // namespace cpt::backend
