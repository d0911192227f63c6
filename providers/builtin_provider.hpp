#pragma once

#include "providers/provider.hpp"

#include <string>
#include <vector>

namespace parley {

/// The reply `echo` gives to a context: "Echo: <the last user message>".
std::string echo_reply(const prompt& messages);

/// `text` up to where the first of the `stop` sequences in it begins: what
/// echo answers to a request with stop sequences.
std::string cut_at_stop(std::string text, const std::vector<std::string>& stop);

/// Splits text into the pieces echo streams: each word with the white space
/// before it, so that the pieces concatenate to the text.
std::vector<std::string> split_words(const std::string& text);

/// The built-in provider: model `echo`, no network, latency imitated with
/// timers (time to first token, inter-token latency) on one timer thread.
/// With zero latency it answers synchronously inside start().
std::shared_ptr<provider> make_builtin_provider(unsigned ttft_ms, unsigned itl_ms);

}  // namespace parley
