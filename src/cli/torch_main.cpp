#include "cpt/cli/app.h"

// cpt-train-torch: what cpt-train runs for the commands that need LibTorch.
int main(int argc, char** argv) { return cpt::cli::run(argc, argv); }
