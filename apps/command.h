// Subcommands of the `vlserve` binary. Each lives in its own apps/cmd_<name>.cc and adds
// itself to the one table with VLSERVE_COMMAND; main.cc only dispatches.
#pragma once

#include <string>
#include <vector>

namespace vlserve::app {

// argv[0] is the subcommand name; returns the process exit code.
using CommandFn = int (*)(int argc, char** argv);

struct Command {
  const char* name;
  const char* summary;
  CommandFn run;
};

// Sorted by name.
const std::vector<Command>& Commands();

struct CommandRegistrar {
  CommandRegistrar(const char* name, const char* summary, CommandFn run);
};

}  // namespace vlserve::app

#define VLSERVE_COMMAND_CONCAT_INNER(a, b) a##b
#define VLSERVE_COMMAND_CONCAT(a, b) VLSERVE_COMMAND_CONCAT_INNER(a, b)
// `fn` may be a qualified name; the registrar's own name comes from the line number.
#define VLSERVE_COMMAND(name, summary, fn)                                                   \
  static ::vlserve::app::CommandRegistrar VLSERVE_COMMAND_CONCAT(vlserve_command_registrar_, \
                                                                 __LINE__)(name, summary, fn)
