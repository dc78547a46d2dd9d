#pragma once

#include <dirent.h>

#include <fstream>
#include <string>

namespace ferry::testing {

// How often this process's threads named `name` went to sleep (their voluntary context switches, from /proc): a
// thread that should sleep until there is work must not move it. -1 when no thread has that name.
inline long SleepsOfThreads(std::string const& name) {
  long total = -1;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  while (dirent* d = readdir(dir)) {
    if (d->d_name[0] == '.') continue;
    std::string task = std::string("/proc/self/task/") + d->d_name;
    std::string comm;
    std::getline(std::ifstream(task + "/comm"), comm);
    if (comm != name) continue;
    if (total < 0) total = 0;
    std::ifstream status(task + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) total += std::stol(line.substr(line.find(':') + 1));
    }
  }
  closedir(dir);
  return total;
}

}  // namespace ferry::testing
