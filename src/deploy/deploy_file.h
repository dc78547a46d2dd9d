#pragma once

#include <string>

#include "model/deploy_request.h"
#include "ferry/status.h"

namespace ferry {

// Reads a deploy file (ferry.yaml, PRODUCT.md section 8) into a deploy request: strict about keys and types,
// source_dir made absolute against the file's directory, every function checked as the daemon will check it.
// Errors are INVALID_ARGUMENT "FILE:LINE:COLUMN: what is wrong", so a broken file is refused whole.
// `default_project` applies when the file names none.
StatusOr<DeployRequest> ParseDeployFile(std::string const& path, std::string const& default_project);
// The same for a file's text; `path` names it in messages and anchors its relative paths.
StatusOr<DeployRequest> ParseDeployText(std::string const& text, std::string const& path,
                                        std::string const& default_project);

}  // namespace ferry
