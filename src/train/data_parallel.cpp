#include "cpt/train/data_parallel.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>

#include <cmath>
#include <map>
#include <mutex>

#include "cpt/train/adamw_kernel.h"

namespace cpt::train {

struct DataParallel::Buckets {
  std::mutex mutex;
  bool armed = false;
  std::vector<int64_t> begin, end;  // element ranges of the flat gradient buffer
  std::vector<size_t> of_parameter;
  std::vector<int> expected, ready;
  size_t next_to_start = 0;
  std::vector<dist::Pending> pending;
  // The accumulator is held as grad_accumulator() returns it: a
  // c10::intrusive_ptr<Node> from LibTorch 2.13, a std::shared_ptr before.
  using Accumulator = decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor&>()));
  std::vector<std::pair<Accumulator, uintptr_t>> hooks;
};

namespace {

// Runs after a parameter's gradient accumulator has added this backward's
// gradient into .grad: the gradient is final.
class GradientReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  explicit GradientReadyHook(std::function<void()> ready) : ready_(std::move(ready)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    ready_();
    return outputs;
  }

 private:
  std::function<void()> ready_;
};

}  // namespace

DataParallel::DataParallel(dist::ProcessGroup& group, const NamedTensors& parameters, bool zero1, int64_t bucket_bytes,
                           torch::ScalarType compute_dtype)
    : group_(group),
      parameters_(parameters),
      zero1_(zero1),
      compute_dtype_(compute_dtype),
      chunk_elements_(std::max<int64_t>(1, bucket_bytes / 4)),
      buckets_(std::make_shared<Buckets>()) {
  torch::NoGradGuard no_grad;
  const int64_t world = group.size();
  offsets_.assign(parameters_.size(), 0);
  int64_t total = 0;
  for (size_t i = parameters_.size(); i-- > 0;) {
    offsets_[i] = total;
    total += parameters_[i].second.numel();
  }
  total = (total + world - 1) / world * world;  // equal ZeRO-1 ranges
  const auto options = torch::TensorOptions().dtype(compute_dtype_).device(
      parameters_.empty() ? torch::Device(torch::kCPU) : parameters_.front().second.device());
  flat_params_ = torch::zeros({total}, options);
  flat_grads_ = torch::zeros({total}, options);
  const bool sharded_here = zero1_ && world > 1;
  owned_begin_ = sharded_here ? total / world * group.rank() : 0;
  owned_end_ = sharded_here ? owned_begin_ + total / world : total;
  const int64_t owned = owned_end_ - owned_begin_;
  update_in_one_pass_ = mixed() && compute_dtype_ == torch::kBFloat16 && flat_params_.is_cpu() && world == 1;
  master_ = mixed() ? torch::zeros({owned}, options.dtype(torch::kFloat)) : flat_params_.narrow(0, owned_begin_, owned);
  if (update_in_one_pass_) {
    main_grads_ = flat_grads_;  // the optimizer reads the bf16 gradients as they are
  } else {
    main_grads_ = mixed() || sharded_here ? torch::zeros({owned}, options.dtype(torch::kFloat)) : flat_grads_;
  }

  // Buckets close at parameter boundaries, in flat (reverse) order.
  Buckets& b = *buckets_;
  b.of_parameter.assign(parameters_.size(), 0);
  for (size_t i = parameters_.size(); i-- > 0;) {
    if (b.begin.empty() || offsets_[i] - b.begin.back() >= chunk_elements_) {
      if (!b.begin.empty()) b.end.push_back(offsets_[i]);
      b.begin.push_back(offsets_[i]);
      b.expected.push_back(0);
    }
    b.of_parameter[i] = b.begin.size() - 1;
    ++b.expected.back();
  }
  b.end.push_back(total);
  b.ready.assign(b.begin.size(), 0);
  b.pending.resize(b.begin.size());

  for (size_t i = 0; i < parameters_.size(); ++i) {
    torch::Tensor& p = parameters_[i].second;
    const int64_t n = p.numel();
    const auto values = p.detach().reshape({-1});
    if (mixed()) copy_owned_part(i, values);  // the fp32 values seed the master before the cast
    flat_params_.narrow(0, offsets_[i], n).copy_(values);
    p.set_data(flat_params_.narrow(0, offsets_[i], n).view(p.sizes()));
    p.mutable_grad() = flat_grads_.narrow(0, offsets_[i], n).view(p.sizes());
    if (world > 1 && !zero1_) {
      auto accumulator = torch::autograd::impl::grad_accumulator(p);
      const uintptr_t key =
          accumulator->add_post_hook(std::make_unique<GradientReadyHook>([this, i] { on_gradient_ready(i); }));
      b.hooks.emplace_back(std::move(accumulator), key);
    }
  }
}

std::pair<int64_t, int64_t> DataParallel::owned_part(size_t i) const {
  return {std::max(owned_begin_, offsets_[i]), std::min(owned_end_, offsets_[i] + parameters_[i].second.numel())};
}

void DataParallel::copy_owned_part(size_t i, const torch::Tensor& values) {
  const auto [begin, end] = owned_part(i);
  if (begin < end) master_.narrow(0, begin - owned_begin_, end - begin).copy_(values.narrow(0, begin - offsets_[i], end - begin));
}

DataParallel::~DataParallel() {
  for (auto& [accumulator, key] : buckets_->hooks) accumulator->del_post_hook(key);
}

std::vector<ParamSlice> DataParallel::owned_slices() const {
  std::vector<ParamSlice> slices;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& [name, p] = parameters_[i];
    const auto [begin, end] = owned_part(i);
    if (begin >= end) continue;
    auto master = master_.narrow(0, begin - owned_begin_, end - begin);
    auto grad = main_grads_.narrow(0, begin - owned_begin_, end - begin);
    if (end - begin == p.numel()) {
      master = master.view(p.sizes());
      grad = grad.view(p.sizes());
    }
    ParamSlice slice{name, master, grad, begin - offsets_[i], p.dim() >= 2, {}};
    if (update_in_one_pass_) slice.publish = flat_params_.narrow(0, offsets_[i], p.numel()).view(p.sizes());
    slices.push_back(std::move(slice));
  }
  return slices;
}

void DataParallel::zero_grad() {
  flat_grads_.zero_();
  Buckets& b = *buckets_;
  std::lock_guard<std::mutex> lock(b.mutex);
  b.armed = false;
  b.next_to_start = 0;
  std::fill(b.ready.begin(), b.ready.end(), 0);
}

void DataParallel::sync_during_next_backward() {
  if (group_.size() == 1 || zero1_) return;
  std::lock_guard<std::mutex> lock(buckets_->mutex);
  buckets_->armed = true;
}

// Called with the bucket mutex held. In bf16 the bucket's gradients are
// cast into the fp32 main gradients first, so the sum is in fp32.
void DataParallel::start_bucket(size_t k) {
  Buckets& b = *buckets_;
  auto main = main_grads_.narrow(0, b.begin[k], b.end[k] - b.begin[k]);
  if (mixed()) main.copy_(flat_grads_.narrow(0, b.begin[k], b.end[k] - b.begin[k]));
  b.pending[k] = group_.all_reduce_sum(main);
}

void DataParallel::on_gradient_ready(size_t parameter) {
  Buckets& b = *buckets_;
  std::lock_guard<std::mutex> lock(b.mutex);
  if (!b.armed) return;
  ++b.ready[b.of_parameter[parameter]];
  while (b.next_to_start < b.begin.size() && b.ready[b.next_to_start] == b.expected[b.next_to_start]) {
    start_bucket(b.next_to_start++);
  }
}

void DataParallel::finish_gradient_sync() {
  torch::NoGradGuard no_grad;
  const int world = group_.size();
  if (world == 1) {
    if (mixed() && !update_in_one_pass_) main_grads_.copy_(flat_grads_);
    return;
  }
  if (zero1_) {
    // In fp32 one reduce-scatter of the buffer itself. In bf16 chunk by
    // chunk (rank r's part of each chunk is the same stretch of its range),
    // so only one chunk of fp32 copies exists at a time.
    started_during_backward_ = 0;
    const int64_t range = owned_end_ - owned_begin_;
    const int64_t chunk = mixed() ? chunk_elements_ : range;
    for (int64_t first = 0; first < range; first += chunk) {
      const int64_t n = std::min(chunk, range - first);
      std::vector<torch::Tensor> inputs;
      for (int r = 0; r < world; ++r) {
        auto part = flat_grads_.narrow(0, range * r + first, n);
        inputs.push_back(mixed() ? part.to(torch::kFloat) : part);
      }
      group_.reduce_scatter_sum(main_grads_.narrow(0, first, n), std::move(inputs)).wait();
    }
  } else {
    Buckets& b = *buckets_;
    {
      std::lock_guard<std::mutex> lock(b.mutex);
      b.armed = false;
      started_during_backward_ = b.next_to_start;
      // A parameter without a gradient this step never reported: start the rest, in order.
      for (; b.next_to_start < b.begin.size(); ++b.next_to_start) start_bucket(b.next_to_start);
    }
    for (auto& pending : b.pending) pending.wait();
  }
  main_grads_.div_(static_cast<double>(world));
}

namespace {

// Σ x² of a host bf16 buffer over both cores, in fixed blocks: the same
// value whatever the number of threads.
double host_bf16_sum_of_squares(const torch::Tensor& flat) {
  constexpr int64_t kBlock = 1 << 20;
  const auto* x = reinterpret_cast<const uint16_t*>(flat.data_ptr<at::BFloat16>());
  const int64_t n = flat.numel(), blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks));
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const auto count = static_cast<size_t>(std::min(kBlock, n - b * kBlock));
      partial[static_cast<size_t>(b)] = bf16_sum_of_squares(x + b * kBlock, count);
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

torch::Tensor DataParallel::reduce_statistics(const torch::Tensor& local_loss, bool stop, double max_norm) {
  torch::NoGradGuard no_grad;
  const int world = group_.size();
  const auto options = torch::TensorOptions().dtype(torch::kDouble).device(main_grads_.device());
  // One flat norm over the main gradients (one kernel). Without ZeRO-1
  // every rank holds the same full gradients and contributes 1/N of the
  // square; with it, the square of its own range.
  auto squares = update_in_one_pass_ ? torch::full({}, host_bf16_sum_of_squares(main_grads_), options)
                                     : main_grads_.norm(2).to(torch::kDouble).square();
  if (world > 1 && !zero1_) squares = squares / static_cast<double>(world);
  auto stats = torch::stack({local_loss.detach().to(options).reshape({}), torch::full({}, stop ? 1.0 : 0.0, options),
                             squares.reshape({})});
  if (world > 1) group_.all_reduce_sum(stats).wait();
  const auto loss = stats[0] / static_cast<double>(world);
  const auto norm = stats[2].sqrt();
  const auto nonfinite = torch::logical_not(torch::isfinite(loss).logical_and(torch::isfinite(norm))).to(torch::kDouble);
  // torch.nn.utils.clip_grad_norm_'s factor, applied by the optimizer.
  const auto clip = max_norm > 0 ? (max_norm / (norm + 1e-6)).clamp_max(1.0) : torch::ones({}, options);
  return torch::stack({loss, stats[1], norm, nonfinite, clip});
}

void DataParallel::publish_parameters() {
  torch::NoGradGuard no_grad;
  if (mixed() && !update_in_one_pass_) flat_params_.narrow(0, owned_begin_, owned_end_ - owned_begin_).copy_(master_);
  if (!zero1_ || group_.size() == 1) return;
  const int64_t range = owned_end_ - owned_begin_;
  std::vector<torch::Tensor> ranges;
  for (int r = 0; r < group_.size(); ++r) ranges.push_back(flat_params_.narrow(0, range * r, range));
  group_.all_gather(ranges[static_cast<size_t>(group_.rank())].clone(), ranges);
}

NamedTensors DataParallel::full_master_weights() {
  torch::NoGradGuard no_grad;
  torch::Tensor flat = master_;
  if (!mixed()) {
    flat = flat_params_;  // fp32: the parameters are the master, and every rank has all of them
  } else if (zero1_ && group_.size() > 1) {
    // Gathered into host memory a chunk at a time: the device holds one
    // chunk per rank beyond its own state, never a second full copy.
    const int world = group_.size();
    const int64_t range = owned_end_ - owned_begin_;
    flat = torch::empty({flat_params_.numel()}, torch::kFloat);
    for (int64_t first = 0; first < range; first += chunk_elements_) {
      const int64_t n = std::min(chunk_elements_, range - first);
      std::vector<torch::Tensor> chunks;
      for (int r = 0; r < world; ++r) chunks.push_back(torch::empty({n}, master_.options()));
      group_.all_gather(master_.narrow(0, first, n), chunks);
      for (int r = 0; r < world; ++r) flat.narrow(0, range * r + first, n).copy_(chunks[static_cast<size_t>(r)]);
    }
  }
  NamedTensors out;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& [name, p] = parameters_[i];
    out.emplace_back(name, flat.narrow(0, offsets_[i], p.numel()).view(p.sizes()));
  }
  return out;
}

void DataParallel::load_master_weights(const NamedTensors& values) {
  torch::NoGradGuard no_grad;
  std::map<std::string, const torch::Tensor*> by_name;
  for (const auto& [name, t] : values) by_name[name] = &t;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& [name, p] = parameters_[i];
    const auto it = by_name.find(name);
    TORCH_CHECK(it != by_name.end(), "load_master_weights: no value for ", name);
    const auto flat = it->second->reshape({-1}).to(master_.device(), torch::kFloat);
    flat_params_.narrow(0, offsets_[i], p.numel()).copy_(flat);
    if (mixed()) copy_owned_part(i, flat);
  }
}

bool DataParallel::parameters_are_host_master() const {
  return !mixed() && flat_params_.is_cpu();
}

size_t DataParallel::buckets() const { return buckets_->begin.size(); }

}  // namespace cpt::train
