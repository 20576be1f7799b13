// minerva/export.h (C and C++): MINERVA_API marks what libminerva exports. The library is built with hidden
// visibility (and a linker version script), so only the declarations carrying it are visible to
// programs linking libminerva.so; everything else stays internal.
#pragma once

#if defined(MINERVA_BUILDING_LIBRARY)
#define MINERVA_API __attribute__((visibility("default")))
#else
#define MINERVA_API
#endif
