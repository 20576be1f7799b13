// structured.cpp: response_format and grammar -> a grammar constraint for the sampler.
#include "structured.h"

#include <list>
#include <mutex>

#include "minerva/error.h"
#include "models.h"

namespace minerva::serve {

using json = nlohmann::json;

namespace {

constexpr size_t kCacheEntries = 32;

struct CacheEntry {
    std::shared_ptr<const Vocab> vocab;  // held so the address cannot be reused while cached
    std::string gbnf;
    std::shared_ptr<GrammarConstraint> constraint;
};

std::mutex cache_mu;
std::list<CacheEntry> cache;  // most recently used first

}  // namespace

std::shared_ptr<GrammarConstraint> cached_constraint(const std::string& gbnf, const std::shared_ptr<const Vocab>& vocab) {
    {
        std::lock_guard lock(cache_mu);
        for (auto it = cache.begin(); it != cache.end(); ++it)
            if (it->vocab == vocab && it->gbnf == gbnf) {
                cache.splice(cache.begin(), cache, it);
                return cache.front().constraint;
            }
    }
    auto c = GrammarConstraint::create(Grammar::parse(gbnf), vocab);  // outside the lock: ~100 ms for 128k tokens
    std::lock_guard lock(cache_mu);
    cache.push_front({vocab, gbnf, c});
    if (cache.size() > kCacheEntries) cache.pop_back();
    return c;
}

std::shared_ptr<GrammarConstraint> parse_structured(const json& body, const std::shared_ptr<const Vocab>& vocab) {
    const json* rf = nullptr;
    if (auto it = body.find("response_format"); it != body.end() && !it->is_null()) rf = &*it;
    const json* gr = nullptr;
    if (auto it = body.find("grammar"); it != body.end() && !it->is_null()) gr = &*it;
    if (rf && gr) {
        // a text response_format beside a grammar is harmless; anything else contradicts it
        if (!(rf->is_object() && rf->value("type", json()) == "text"))
            throw ApiError(400, "'grammar' and 'response_format' cannot both constrain the output; send one", "grammar", "invalid_value");
        rf = nullptr;
    }
    std::string gbnf;
    if (gr) {
        if (!gr->is_string()) throw ApiError(400, "'grammar' must be a string holding a GBNF grammar", "grammar", "invalid_type");
        gbnf = gr->get<std::string>();
        try {
            return cached_constraint(gbnf, vocab);
        } catch (const Error& e) {
            throw ApiError(400, std::string("'grammar' is not a valid GBNF grammar: ") + e.what(), "grammar", "invalid_value");
        }
    }
    if (!rf) return nullptr;
    if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string())
        throw ApiError(400, "'response_format' must be an object with a string 'type'", "response_format", "invalid_type");
    for (auto& [k, v] : rf->items())
        if (k != "type" && k != "json_schema")
            throw ApiError(400, "'response_format." + k + "' is not supported", "response_format." + k, "invalid_value");
    const std::string type = (*rf)["type"].get<std::string>();
    if (type == "text") {
        if (rf->contains("json_schema"))
            throw ApiError(400, "'response_format.json_schema' needs type 'json_schema'", "response_format.json_schema", "invalid_value");
        return nullptr;
    }
    if (type == "json_object") {
        if (rf->contains("json_schema"))
            throw ApiError(400, "'response_format.json_schema' needs type 'json_schema'", "response_format.json_schema", "invalid_value");
        gbnf = json_schema_to_gbnf(R"({"type":"object"})");
    } else if (type == "json_schema") {
        auto it = rf->find("json_schema");
        if (it == rf->end() || !it->is_object())
            throw ApiError(400, "'response_format.json_schema' must be an object with 'name' and 'schema'", "response_format.json_schema",
                           "invalid_type");
        const json& js = *it;
        for (auto& [k, v] : js.items())
            if (k != "name" && k != "schema" && k != "strict" && k != "description")
                throw ApiError(400, "'response_format.json_schema." + k + "' is not supported", "response_format.json_schema." + k,
                               "invalid_value");
        if (!js.contains("name") || !js["name"].is_string() || js["name"].get<std::string>().empty())
            throw ApiError(400, "'response_format.json_schema.name' must be a non-empty string", "response_format.json_schema.name",
                           "invalid_value");
        if (js.contains("strict") && !js["strict"].is_boolean() && !js["strict"].is_null())
            throw ApiError(400, "'response_format.json_schema.strict' must be a boolean", "response_format.json_schema.strict",
                           "invalid_type");
        // strict or not, the output is held to the schema: the grammar admits nothing else
        json schema = js.contains("schema") && !js["schema"].is_null() ? js["schema"] : json::object();
        if (!schema.is_object() && !schema.is_boolean())
            throw ApiError(400, "'response_format.json_schema.schema' must be a JSON Schema object", "response_format.json_schema.schema",
                           "invalid_type");
        try {
            gbnf = json_schema_to_gbnf(schema.dump());
        } catch (const Error& e) {
            throw ApiError(400, std::string("'response_format.json_schema.schema': ") + e.what(), "response_format.json_schema.schema",
                           "invalid_value");
        }
    } else {
        throw ApiError(400, "'response_format.type' must be 'text', 'json_object' or 'json_schema', got '" + type + "'",
                       "response_format.type", "invalid_value");
    }
    try {
        return cached_constraint(gbnf, vocab);
    } catch (const Error& e) {
        throw ApiError(400, std::string("'response_format' gives a grammar that cannot be compiled: ") + e.what(), "response_format",
                       "invalid_value");
    }
}

}  // namespace minerva::serve
