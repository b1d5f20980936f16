// The render action: the whole source frame goes to the daemon, the render window comes back.
#pragma once

#include "instance.h"

namespace nightgrade::ofx {

// Renders the window in inArgs. Throws BridgeError for every failure the user must see; the
// caller turns it into a persistent message and kOfxStatFailed.
void render_frame(Instance& instance, OfxPropertySetHandle in_args);

}  // namespace nightgrade::ofx
