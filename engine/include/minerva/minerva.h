// minerva/minerva.h: the whole C++ API of libminerva in one include (C++20; the C API is
// <minerva.h>). It includes every public header:
//   minerva/error.h     the one exception type
//   minerva/types.h     tensor element types
//   minerva/gguf.h      the GGUF file reader
//   minerva/vocab.h     tokenizers and streaming detokenization
//   minerva/model.h     models, sessions (KV cache), sampling, generation, perplexity
//   minerva/chat.h      chat templates
//   minerva/quantize.h  quantizing and synthesizing model files
//   minerva/devices.h   the Vulkan devices present
//   minerva/log.h       where diagnostics go (log level, log callback)
//   minerva/version.h   MINERVA_VERSION_* macros of these headers
//
//   auto model = minerva::Model::load("model.gguf");
//   minerva::Session session(model);
//   auto prompt = model->vocab()->tokenize("Once upon a time", true, false);
//   minerva::generate(session, prompt, {}, [](int32_t, std::string_view text) {
//       std::fwrite(text.data(), 1, text.size(), stdout); return true; });
#pragma once
#include "minerva/chat.h"
#include "minerva/devices.h"
#include "minerva/error.h"
#include "minerva/export.h"
#include "minerva/gguf.h"
#include "minerva/grammar.h"
#include "minerva/log.h"
#include "minerva/model.h"
#include "minerva/quantize.h"
#include "minerva/tools.h"
#include "minerva/types.h"
#include "minerva/version.h"
#include "minerva/vocab.h"

namespace minerva {
// The library's version ("0.1.0"); MINERVA_VERSION_STRING is the headers'.
MINERVA_API const char* version();
}  // namespace minerva
