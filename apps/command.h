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

#define VLSERVE_COMMAND(name, summary, fn) \
  static ::vlserve::app::CommandRegistrar vlserve_command_registrar_##fn(name, summary, fn)
