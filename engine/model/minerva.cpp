#include "minerva/minerva.h"

namespace minerva {

const char* version() { return MINERVA_VERSION_STRING; }

}  // namespace minerva
