#pragma once
// The umbrella header: everything respool offers. Include a component's own header to pay only
// for what you use.
#include "errors.hpp"
#include "version.hpp"
