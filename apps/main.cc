#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "command.h"
#include "version.h"

namespace vlserve::app {
namespace {

std::vector<Command>& MutableCommands() {
  static std::vector<Command> commands;
  return commands;
}

void PrintHelp() {
  std::printf(
      "vlserve %s: a fast inference server for vision-language models\n\n"
      "usage: vlserve <command> [options]    (vlserve <command> --help for its options)\n\n"
      "commands:\n",
      VLSERVE_VERSION);
  for (const Command& c : Commands()) std::printf("  %-16s %s\n", c.name, c.summary);
  std::printf("\n  --version        print the version\n  --help           this text\n");
}

}  // namespace

CommandRegistrar::CommandRegistrar(const char* name, const char* summary, CommandFn run) {
  auto& commands = MutableCommands();
  commands.push_back({name, summary, run});
  std::sort(commands.begin(), commands.end(),
            [](const Command& a, const Command& b) { return std::strcmp(a.name, b.name) < 0; });
}

const std::vector<Command>& Commands() { return MutableCommands(); }

}  // namespace vlserve::app

int main(int argc, char** argv) {
  using namespace vlserve::app;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    PrintHelp();
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "version") == 0) {
    std::printf("vlserve %s\n", VLSERVE_VERSION);
    return 0;
  }
  for (const Command& c : Commands()) {
    if (std::strcmp(c.name, argv[1]) == 0) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "vlserve: unknown command '%s'; run 'vlserve --help' for the list\n",
               argv[1]);
  return 2;
}
