/* version.h: the one place the release number is written. */
#ifndef RF_VERSION_H
#define RF_VERSION_H
#define RETURNFLOW_VERSION "0.1.0"
#endif
