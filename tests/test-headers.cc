// test-headers.cc - every public header compiles as C++ (extern "C", no C-only constructs).
#include <jobq.h>
#if __has_include(<jobq/letters.h>)
#include <jobq/letters.h>
#endif
#if __has_include(<jobq/matmul.h>)
#include <jobq/matmul.h>
#endif

int
main()
{
    // Linkage is C: a function pointer of the C type binds to the declaration.
    const char *(*f)(int) = jobq_strerror;
    return f == nullptr;
}
