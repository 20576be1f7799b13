// server/webui/webui.h: the chat page minerva-serve serves at / (server/webui/index.html,
// embedded at build time by server/webui/embed.cmake; it fetches nothing but the server's API).
#pragma once
#include <string_view>

namespace minerva::serve {

std::string_view webui_index_html();

}  // namespace minerva::serve
