#pragma once

#include <string_view>

namespace ferry {

// The deepest a JSON document Ferry parses may nest ([[[...]]] or {"a":{"a":...}}). Google's APIs need far
// less; the limit keeps recursive code (nlohmann's dump, copies, destructors) off the end of the stack.
inline constexpr int kMaxJsonDepth = 64;

// Whether the brackets of `text` nest at most `max_depth` deep, outside strings. One linear pass over the bytes,
// run before a parser builds a tree. Written by hand because nlohmann's parser offers a depth only through its
// callback interface, which costs every value a call; this looks only at brackets, quotes and escapes, and leaves
// every other judgement of the text to the parser.
bool JsonNestingWithin(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace ferry
