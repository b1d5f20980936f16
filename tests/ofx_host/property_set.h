// Property sets as a real host keeps them: typed, multi-dimensional values in a map, with the
// OpenFX property suite over them. Wrong types, missing properties and bad indices answer the
// error statuses a strict host gives, and are logged as VIOLATION lines for the tests.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ofx/property.h"

namespace testhost {

struct Property {
  enum class Type { Int, Double, String, Pointer };
  Type type = Type::Int;
  std::vector<int> ints;
  std::vector<double> doubles;
  std::vector<std::string> strings;
  std::vector<void*> pointers;
  size_t size() const;
};

class PropertySet {
 public:
  explicit PropertySet(std::string label = {}) : label_(std::move(label)) {}
  const std::string& label() const { return label_; }

  // Host-side access (no status codes: the host knows what it set).
  void set_int(const std::string& name, std::vector<int> values);
  void set_double(const std::string& name, std::vector<double> values);
  void set_string(const std::string& name, std::vector<std::string> values);
  void set_pointer(const std::string& name, std::vector<void*> values);
  // Declares a typed, empty property so a plug-in setting the wrong type is caught.
  void declare(const std::string& name, Property::Type type);
  bool has(const std::string& name) const { return props_.count(name) != 0; }
  const Property* find(const std::string& name) const;
  Property* find(const std::string& name);
  int get_int(const std::string& name, int index, int fallback) const;
  double get_double(const std::string& name, int index, double fallback) const;
  std::string get_string(const std::string& name, int index, const std::string& fallback) const;
  void* get_pointer(const std::string& name, int index) const;
  // Copies every property of `other` (descriptor -> instance).
  void copy_from(const PropertySet& other);
  const std::map<std::string, Property>& all() const { return props_; }

  OfxPropertySetHandle handle() { return reinterpret_cast<OfxPropertySetHandle>(this); }
  static PropertySet* from(OfxPropertySetHandle handle) { return reinterpret_cast<PropertySet*>(handle); }

 private:
  std::string label_;
  std::map<std::string, Property> props_;
};

// The property suite over PropertySet handles.
const OfxPropertySuiteV1* property_suite();

}  // namespace testhost
