#include "cpt/cli/app.h"

int main(int argc, char** argv) { return cpt::cli::run(argc, argv); }
