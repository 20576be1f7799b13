// embeddings.h: POST /v1/embeddings (OpenAI's request and response shapes).
#pragma once
#include <nlohmann/json.hpp>

#include "models.h"

namespace minerva::serve {

// Validates the body (input as a string, strings, token ids or arrays of token ids;
// encoding_format "float" or "base64"; dimensions only when equal to the model's), runs the
// inputs through the model's scheduler and returns the response. ApiError 400 naming the field
// for anything it cannot honour; 429 when the queue is full.
nlohmann::json create_embeddings(const nlohmann::json& body, LoadedModel& lm, int& prompt_tokens);

}  // namespace minerva::serve
