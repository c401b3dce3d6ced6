/*
 * error.c - jobq_strerror() and jobq_err_name(), generated from JOBQ_ERRNO_MAP so that a code,
 * its name and its message are written down exactly once (include/jobq.h).
 */
#include <jobq.h>

const char *
jobq_strerror(int err)
{
    if (err == 0)
        return "success";
    switch (err) {
#define JOBQ__ERR_MSG(name, value, msg)                                                            \
    case value:                                                                                    \
        return msg;
        JOBQ_ERRNO_MAP(JOBQ__ERR_MSG)
#undef JOBQ__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *
jobq_err_name(int err)
{
    if (err == 0)
        return "JOBQ_OK";
    switch (err) {
#define JOBQ__ERR_NAME(name, value, msg)                                                           \
    case value:                                                                                    \
        return "JOBQ_E" #name;
        JOBQ_ERRNO_MAP(JOBQ__ERR_NAME)
#undef JOBQ__ERR_NAME
    default:
        return "JOBQ_UNKNOWN";
    }
}
