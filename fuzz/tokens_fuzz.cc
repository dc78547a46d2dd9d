// Token files and Authorization headers: a token list parses or is refused; a header is checked without a crash,
// and only a configured secret authenticates.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/auth/tokens.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string_view text(reinterpret_cast<char const*>(data), size);
  (void)ferry::ParseTokenList(text, "fuzz");
  auto grants = ferry::ParseTokenList("admin=fuzz-secret-0123456789", "fixed");
  if (!grants.ok()) std::abort();
  ferry::TokenAuthenticator tokens(*grants);
  auto st = tokens.Check(text, ferry::Role::kViewer);
  bool right = text == "Bearer fuzz-secret-0123456789" || text == "bearer fuzz-secret-0123456789" ||
               text == "BEARER fuzz-secret-0123456789";
  if (st.ok() && text.find("fuzz-secret-0123456789") == std::string_view::npos) std::abort();
  if (right && !st.ok()) std::abort();
  return 0;
}
