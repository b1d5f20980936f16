// The OfxHost handed to the plug-in: host properties and fetchSuite over every suite.
#pragma once

#include "ofx/core.h"

namespace testhost {

OfxHost* host();

}  // namespace testhost
