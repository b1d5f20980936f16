// One function per OpenFX action the bridge traps. Each may throw; plugin.cpp's entry point
// catches everything so nothing crosses the C ABI.
#pragma once

#include "ofx/image_effect.h"

namespace nightgrade::ofx::actions {

OfxStatus describe(OfxImageEffectHandle descriptor);
OfxStatus describe_in_context(OfxImageEffectHandle descriptor, OfxPropertySetHandle in_args);
OfxStatus create_instance(OfxImageEffectHandle handle);
OfxStatus destroy_instance(OfxImageEffectHandle handle);
OfxStatus instance_changed(OfxImageEffectHandle handle, OfxPropertySetHandle in_args);
OfxStatus publish(OfxImageEffectHandle handle);
OfxStatus purge_caches(OfxImageEffectHandle handle);
OfxStatus region_of_definition(OfxImageEffectHandle handle, OfxPropertySetHandle in_args, OfxPropertySetHandle out_args);
OfxStatus regions_of_interest(OfxImageEffectHandle handle, OfxPropertySetHandle in_args, OfxPropertySetHandle out_args);
OfxStatus frames_needed(OfxImageEffectHandle handle, OfxPropertySetHandle in_args, OfxPropertySetHandle out_args);
OfxStatus is_identity(OfxImageEffectHandle handle, OfxPropertySetHandle in_args, OfxPropertySetHandle out_args);
OfxStatus render(OfxImageEffectHandle handle, OfxPropertySetHandle in_args);

}  // namespace nightgrade::ofx::actions
