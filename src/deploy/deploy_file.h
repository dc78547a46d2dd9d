#pragma once

#include <map>
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

// gcloud's --env-vars-file (and the action's env_vars_file input): a YAML map of names to strings. Errors carry the
// file, line and column.
StatusOr<Attributes> ReadEnvVarsFile(std::string const& path);

// The deploy-cloud-functions steps of a GitHub Actions workflow as a deploy of their functions
// (docs/coming-from-cloud-functions.md): each step's `with:` block is read as a deploy file's function
// entry, after its ${{ ... }} expressions are resolved: env.NAME from the job's and then the workflow's `env`, any
// other from `sets` (the expression's text, as "needs.setup_environment.outputs.gcp_env", to its value). An
// expression left unresolved is an error naming it, with its line and column. The topics of the steps' Pub/Sub
// triggers are created. It deletes nothing (prune = false). source_dir is relative to the repository: the directory
// holding .github/, or the workflow file's own directory when it is elsewhere.
StatusOr<DeployRequest> ParseGithubWorkflow(std::string const& path, std::string const& default_project,
                                            std::map<std::string, std::string> const& sets);
StatusOr<DeployRequest> ParseGithubWorkflowText(std::string const& text, std::string const& path,
                                                std::string const& default_project,
                                                std::map<std::string, std::string> const& sets);

}  // namespace ferry
