#include "functions/source_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

struct Entry {
  std::string path;
  std::string data;
  mode_t type = AE_IFREG;
  std::string link;  // for AE_IFLNK
  int perm = 0644;
};

// A zip with these entries, written with libarchive's zip writer (as gcloud's zipfile would write it).
std::string Zip(std::vector<Entry> const& entries) {
  std::vector<char> buf(1 << 20);
  size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  EXPECT_EQ(archive_write_open_memory(a, buf.data(), buf.size(), &used), ARCHIVE_OK);
  for (auto const& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.perm);
    if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.link.c_str());
    archive_entry_set_size(entry, static_cast<la_int64_t>(e.data.size()));
    EXPECT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << archive_error_string(a);
    if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

class SourceArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = std::filesystem::temp_directory_path() / ("ferry-zip-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(base_);
    std::filesystem::create_directories(base_);
    dir_ = (base_ / "src").string();
  }
  void TearDown() override { std::filesystem::remove_all(base_); }
  std::string Read(std::string const& rel) {
    std::ifstream in(dir_ + "/" + rel);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // Nothing was written anywhere but under dir_, and a refused zip left no dir_.
  void ExpectNothingLeft() {
    EXPECT_FALSE(std::filesystem::exists(dir_));
    EXPECT_TRUE(std::filesystem::is_empty(base_));
  }
  std::filesystem::path base_;
  std::string dir_;
};

TEST_F(SourceArchiveTest, UnpacksFilesAndDirectories) {
  std::string zip = Zip({{"main.py", "def bar(event, context):\n    pass\n"},
                         {"core/", "", AE_IFDIR, "", 0755},
                         {"core/cloud_functions/bar.py", "x = 1\n"},
                         {"run.sh", "#!/bin/sh\n", AE_IFREG, "", 0755}});
  ASSERT_THAT(UnpackZip(zip, dir_), IsOk());
  EXPECT_EQ(Read("main.py"), "def bar(event, context):\n    pass\n");
  EXPECT_EQ(Read("core/cloud_functions/bar.py"), "x = 1\n");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/run.sh").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);
  ASSERT_EQ(::stat((dir_ + "/main.py").c_str(), &st), 0);
  EXPECT_FALSE(st.st_mode & S_IXUSR);
}

TEST_F(SourceArchiveTest, RefusesPathsOutsideTheDirectory) {
  for (std::string path : {"../evil.py", "a/../../evil.py", "/etc/evil", "a/./b", "a//b", "a\\..\\b"}) {
    SCOPED_TRACE(path);
    EXPECT_THAT(UnpackZip(Zip({{"main.py", "ok"}, {path, "x"}}), dir_),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("source zip entry")));
    ExpectNothingLeft();
  }
}

TEST_F(SourceArchiveTest, RefusesLinksAndDuplicates) {
  EXPECT_THAT(UnpackZip(Zip({{"link", "", AE_IFLNK, "/etc/passwd", 0777}}), dir_),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("is a link")));
  ExpectNothingLeft();
  EXPECT_THAT(UnpackZip(Zip({{"main.py", "a"}, {"main.py", "b"}}), dir_),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("twice")));
  ExpectNothingLeft();
}

TEST_F(SourceArchiveTest, RefusesWhatPassesItsLimitsAndWhatIsNoZip) {
  std::string big(4096, 'x');
  EXPECT_THAT(UnpackZip(Zip({{"a", big}, {"b", big}}), dir_, {.max_unpacked_bytes = 6000}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("more than its limit")));
  ExpectNothingLeft();
  EXPECT_THAT(UnpackZip(Zip({{"a", "1"}, {"b", "2"}, {"c", "3"}}), dir_, {.max_entries = 2}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("more than 2 entries")));
  ExpectNothingLeft();
  EXPECT_THAT(UnpackZip("not a zip at all", dir_), StatusIs(StatusCode::kInvalidArgument));
  ExpectNothingLeft();
  // A tar is not taken either: only the zip reader is on.
  std::vector<char> buf(1 << 16);
  size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "main.py");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_size(e, 1);
  archive_write_header(a, e);
  archive_write_data(a, "x", 1);
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  EXPECT_THAT(UnpackZip(std::string(buf.data(), used), dir_), StatusIs(StatusCode::kInvalidArgument));
  ExpectNothingLeft();
}

}  // namespace
}  // namespace ferry
