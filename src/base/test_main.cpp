// The main of every unit-test binary: Catch2 with its own command line.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
