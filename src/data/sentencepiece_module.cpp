// libcpt_sentencepiece.so: SentencePiece behind the small interface in
// sentencepiece_module.h (see there for why it is a separate module).

#include "sentencepiece_module.h"

#include <sentencepiece_processor.h>

namespace {

using Processor = sentencepiece::SentencePieceProcessor;

const Processor* as_processor(const void* model) { return static_cast<const Processor*>(model); }

}  // namespace

extern "C" {

void* cpt_spm_load(const char* path, std::string* error) {
  auto* processor = new Processor();
  const auto status = processor->Load(path);
  if (!status.ok()) {
    *error = status.ToString();
    delete processor;
    return nullptr;
  }
  return processor;
}

void cpt_spm_free(void* model) { delete static_cast<Processor*>(model); }
int cpt_spm_piece_size(const void* model) { return as_processor(model)->GetPieceSize(); }
int cpt_spm_bos_id(const void* model) { return as_processor(model)->bos_id(); }
int cpt_spm_eos_id(const void* model) { return as_processor(model)->eos_id(); }

bool cpt_spm_encode(const void* model, const char* text, size_t size, std::vector<int>* ids, std::string* error) {
  const auto status = as_processor(model)->Encode(absl::string_view(text, size), ids);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

bool cpt_spm_decode(const void* model, const std::vector<int>* ids, std::string* text, std::string* error) {
  const auto status = as_processor(model)->Decode(*ids, text);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}
}
