// Parameters with real values, and the parameter suite over them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ofx/param.h"
#include "property_set.h"

namespace testhost {

struct Param {
  std::string type, name;
  PropertySet props;
  int int_value = 0;        // integer, boolean, choice
  double double_value = 0;  // double
  std::string string_value; // string
  Param(std::string t, std::string n) : type(std::move(t)), name(std::move(n)), props("param " + name) {}
  OfxParamHandle handle() { return reinterpret_cast<OfxParamHandle>(this); }
  // Value as text for the log, and set from text (job files).
  std::string value_text() const;
  bool set_from_text(const std::string& text);
};

class ParamSet {
 public:
  ParamSet() : props_("param set") {}
  Param* define(const std::string& type, const std::string& name);
  Param* find(const std::string& name);
  // Instances: a copy of every descriptor with its default as value.
  void instantiate_from(const ParamSet& descriptors);
  const std::vector<std::unique_ptr<Param>>& params() const { return params_; }
  PropertySet& props() { return props_; }
  OfxParamSetHandle handle() { return reinterpret_cast<OfxParamSetHandle>(this); }
  static ParamSet* from(OfxParamSetHandle h) { return reinterpret_cast<ParamSet*>(h); }

 private:
  PropertySet props_;
  std::vector<std::unique_ptr<Param>> params_;
};

// Set while a render action runs: a plug-in must not set parameter values then.
void set_in_render(bool in_render);

const OfxParameterSuiteV1* parameter_suite();

}  // namespace testhost
