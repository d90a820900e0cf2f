// A stand-in for the Neuron runtime's libnrt.so.1 with two NeuronCores,
// so the Trainium plugin's discovery path runs where no Trainium is.

#include <cstdint>

extern "C" __attribute__((visibility("default"))) int nrt_get_visible_nc_count(uint32_t* count) {
  *count = 2;
  return 0;
}
