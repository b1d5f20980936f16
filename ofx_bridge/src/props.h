// Small, non-throwing helpers over the host's property suite. Getters return the fallback when
// the property is missing or of another type (hosts differ in what they set); setters report
// success so describe can carry on when a host rejects an optional property.
#pragma once

#include <string>
#include <vector>

#include "ofx/core.h"

namespace nightgrade::ofx::props {

int get_int(OfxPropertySetHandle set, const char* name, int index, int fallback);
double get_double(OfxPropertySetHandle set, const char* name, int index, double fallback);
std::string get_string(OfxPropertySetHandle set, const char* name, int index, const std::string& fallback);
void* get_pointer(OfxPropertySetHandle set, const char* name, int index);
// Number of values the property holds, 0 when it is absent.
int dimension(OfxPropertySetHandle set, const char* name);
// Reads `count` ints/doubles; false (and `out` untouched) when the host has fewer.
bool get_ints(OfxPropertySetHandle set, const char* name, int count, int* out);
bool get_doubles(OfxPropertySetHandle set, const char* name, int count, double* out);

bool set_int(OfxPropertySetHandle set, const char* name, int index, int value);
bool set_double(OfxPropertySetHandle set, const char* name, int index, double value);
bool set_string(OfxPropertySetHandle set, const char* name, int index, const std::string& value);
bool set_pointer(OfxPropertySetHandle set, const char* name, int index, void* value);
bool set_strings(OfxPropertySetHandle set, const char* name, const std::vector<std::string>& values);
bool set_doubles(OfxPropertySetHandle set, const char* name, const std::vector<double>& values);

}  // namespace nightgrade::ofx::props
