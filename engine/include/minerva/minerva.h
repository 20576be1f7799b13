// minerva/minerva.h: everything a program needs to use libminerva.
//
//   auto model = minerva::Model::load("model.gguf");
//   minerva::Session session(model);
//   auto prompt = model->vocab()->tokenize("Once upon a time", true, false);
//   minerva::generate(session, prompt, {}, [](int32_t, std::string_view text) {
//       std::fwrite(text.data(), 1, text.size(), stdout); return true; });
#pragma once
#include "minerva/error.h"
#include "minerva/gguf.h"
#include "minerva/grammar.h"
#include "minerva/model.h"
#include "minerva/tools.h"
#include "minerva/types.h"
#include "minerva/vocab.h"

namespace minerva {
const char* version();
// Sets the library's log level: "trace", "debug", "info", "warn", "error", "off".
void set_log_level(const std::string& level);
}  // namespace minerva
