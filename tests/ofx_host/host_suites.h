// The OfxHost handed to the plug-in: host properties and fetchSuite over every suite.
#pragma once

#include "ofx/core.h"

namespace testhost {

OfxHost* host();

// The host descriptor offers OpenFX 1.5 OCIO colour management (jobs with clip_colourspace).
void offer_colour_management();

}  // namespace testhost
