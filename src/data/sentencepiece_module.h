#pragma once
// The interface of libcpt_sentencepiece.so, which Tokenizer loads with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND).
//
// Why a module: Debian's libsentencepiece bundles and exports its own
// protobuf-lite 3.14, while LibTorch pulls in the system protobuf 3.21
// (through ONNX). Linked into one process they interpose each other's
// symbols: protobuf's static initialisers crash inside sentencepiece's copy,
// or sentencepiece's version check fails against the system copy. Loading
// sentencepiece privately, with its own symbols first, keeps them apart.
//
// Both sides are built by this project with one compiler, so the functions
// pass std types; extern "C" only fixes the symbol names.

#include <string>
#include <vector>

extern "C" {

// Null on failure, with `error` set.
void* cpt_spm_load(const char* path, std::string* error);
void cpt_spm_free(void* model);
int cpt_spm_piece_size(const void* model);
int cpt_spm_bos_id(const void* model);
int cpt_spm_eos_id(const void* model);
// False on failure, with `error` set.
bool cpt_spm_encode(const void* model, const char* text, size_t size, std::vector<int>* ids, std::string* error);
bool cpt_spm_decode(const void* model, const std::vector<int>* ids, std::string* text, std::string* error);
}
