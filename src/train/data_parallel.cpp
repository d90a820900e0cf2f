#include "cpt/train/data_parallel.h"

#include <torch/torch.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>

#include <cmath>
#include <mutex>

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

DataParallel::DataParallel(dist::ProcessGroup& group, const NamedTensors& parameters, bool zero1, int64_t bucket_bytes)
    : group_(group), parameters_(parameters), zero1_(zero1), buckets_(std::make_shared<Buckets>()) {
  torch::NoGradGuard no_grad;
  const int64_t world = group.size();
  offsets_.assign(parameters_.size(), 0);
  int64_t total = 0;
  for (size_t i = parameters_.size(); i-- > 0;) {
    offsets_[i] = total;
    total += parameters_[i].second.numel();
  }
  total = (total + world - 1) / world * world;  // equal ZeRO-1 ranges
  const auto options = torch::TensorOptions().dtype(torch::kFloat).device(
      parameters_.empty() ? torch::Device(torch::kCPU) : parameters_.front().second.device());
  flat_params_ = torch::zeros({total}, options);
  flat_grads_ = torch::zeros({total}, options);
  if (zero1_ && world > 1) owned_grads_ = torch::zeros({total / world}, options);

  // Buckets close at parameter boundaries, in flat (reverse) order.
  const int64_t bucket_elements = std::max<int64_t>(1, bucket_bytes / 4);
  Buckets& b = *buckets_;
  b.of_parameter.assign(parameters_.size(), 0);
  for (size_t i = parameters_.size(); i-- > 0;) {
    if (b.begin.empty() || offsets_[i] - b.begin.back() >= bucket_elements) {
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
    flat_params_.narrow(0, offsets_[i], n).copy_(p.detach().reshape({-1}));
    p.set_data(flat_params_.narrow(0, offsets_[i], n).view(p.sizes()));
    p.mutable_grad() = flat_grads_.narrow(0, offsets_[i], n).view(p.sizes());
    if (group.size() > 1) {
      auto accumulator = torch::autograd::impl::grad_accumulator(p);
      const uintptr_t key =
          accumulator->add_post_hook(std::make_unique<GradientReadyHook>([this, i] { on_gradient_ready(i); }));
      b.hooks.emplace_back(std::move(accumulator), key);
    }
  }
}

DataParallel::~DataParallel() {
  for (auto& [accumulator, key] : buckets_->hooks) accumulator->del_post_hook(key);
}

std::vector<ParamSlice> DataParallel::owned_slices() const {
  std::vector<ParamSlice> slices;
  const int64_t total = flat_params_.numel();
  const int64_t lo = zero1_ ? total / group_.size() * group_.rank() : 0;
  const int64_t hi = zero1_ ? lo + total / group_.size() : total;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& [name, p] = parameters_[i];
    const int64_t begin = std::max(lo, offsets_[i]), end = std::min(hi, offsets_[i] + p.numel());
    if (begin < end) slices.push_back({name, p, begin - offsets_[i], end - begin});
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

void DataParallel::on_gradient_ready(size_t parameter) {
  Buckets& b = *buckets_;
  std::lock_guard<std::mutex> lock(b.mutex);
  if (!b.armed) return;
  ++b.ready[b.of_parameter[parameter]];
  while (b.next_to_start < b.begin.size() && b.ready[b.next_to_start] == b.expected[b.next_to_start]) {
    const size_t k = b.next_to_start++;
    b.pending[k] = group_.all_reduce_sum(flat_grads_.narrow(0, b.begin[k], b.end[k] - b.begin[k]));
  }
}

void DataParallel::finish_gradient_sync() {
  if (group_.size() == 1) return;
  if (zero1_) {
    torch::NoGradGuard no_grad;
    started_during_backward_ = 0;
    group_.reduce_scatter_sum(owned_grads_, flat_grads_).wait();
    const int64_t range = owned_grads_.numel();
    flat_grads_.narrow(0, range * group_.rank(), range).copy_(owned_grads_).div_(static_cast<double>(group_.size()));
    return;
  }
  Buckets& b = *buckets_;
  {
    std::lock_guard<std::mutex> lock(b.mutex);
    b.armed = false;
    started_during_backward_ = b.next_to_start;
    // A parameter without a gradient this step never reported: start the rest, in order.
    for (; b.next_to_start < b.begin.size(); ++b.next_to_start) {
      const size_t k = b.next_to_start;
      b.pending[k] = group_.all_reduce_sum(flat_grads_.narrow(0, b.begin[k], b.end[k] - b.begin[k]));
    }
  }
  for (auto& pending : b.pending) pending.wait();
  flat_grads_.div_(static_cast<double>(group_.size()));
}

void DataParallel::gather_parameters() {
  if (!zero1_ || group_.size() == 1) return;
  torch::NoGradGuard no_grad;
  const int64_t range = flat_params_.numel() / group_.size();
  std::vector<torch::Tensor> ranges;
  for (int r = 0; r < group_.size(); ++r) ranges.push_back(flat_params_.narrow(0, range * r, range));
  group_.all_gather(ranges[static_cast<size_t>(group_.rank())].clone(), ranges);
}

double DataParallel::clip_grad_norm(double max_norm) {
  if (!zero1_ || group_.size() == 1) return train::clip_grad_norm(parameters_, max_norm);
  torch::NoGradGuard no_grad;
  const int64_t range = owned_grads_.numel();
  torch::Tensor owned = flat_grads_.narrow(0, range * group_.rank(), range);
  auto squares = owned.pow(2).sum().to(torch::kDouble).cpu().view({1});
  group_.all_reduce_sum(squares).wait();
  const double total = std::sqrt(squares.item<double>());
  if (max_norm > 0) {
    const double coefficient = max_norm / (total + 1e-6);
    if (coefficient < 1.0) owned.mul_(coefficient);
  }
  return total;
}

size_t DataParallel::buckets() const { return buckets_->begin.size(); }

double DataParallel::mean(double value) {
  if (group_.size() == 1) return value;
  auto t = torch::full({1}, value, torch::kDouble);
  group_.all_reduce_sum(t).wait();
  return t.item<double>() / group_.size();
}

}  // namespace cpt::train
