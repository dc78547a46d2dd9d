#pragma once

#include <span>
#include <string_view>

namespace ferry {

// One file of the web console, built into the binary (cmake/embed_assets.cmake).
struct ConsoleAsset {
  std::string_view path;  // relative to /console/: "index.html", "console.js"
  std::string_view bytes;
};

std::span<ConsoleAsset const> ConsoleAssets();

}  // namespace ferry
