#pragma once
// The umbrella header: everything respool offers. Include a component's own header to pay only
// for what you use.
#include "cluster_pool.hpp"
#include "concepts.hpp"
#include "endpoint.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "keyed_pool.hpp"
#include "lease.hpp"
#include "metrics.hpp"
#include "options.hpp"
#include "pool.hpp"
#include "sizing.hpp"
#include "stats.hpp"
#include "thread_pool.hpp"
#include "version.hpp"
