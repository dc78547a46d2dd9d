#pragma once

#include <string>

namespace ferry {

// A bucket: a directory whose files are Cloud Storage objects.
struct BucketRecord {
  std::string name;
  std::string project;      // the project of the deploy that declared it: its events topic is there
  std::string path;         // absolute
  bool versioning = false;  // an overwritten or deleted object's generation is archived, not deleted
  friend bool operator==(BucketRecord const&, BucketRecord const&) = default;
};

}  // namespace ferry
