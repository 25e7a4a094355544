/* kubeletvol.h — a Secret volume written as the kubelet's atomic writer writes it
 * (pkg/volume/util/atomic_writer.go), for tests of what reads one:
 *
 *   DIR/..2026_12_01_10_00_00.123456789/KEY   the files, in a timestamped directory
 *   DIR/..data -> ..2026_12_01_10_00_00.123456789
 *   DIR/KEY -> ..data/KEY                     one link per key
 *
 * An update writes a new timestamped directory, makes the link ..data_tmp to it and
 * renames that over ..data (the one atomic step), then adds the links of new keys,
 * removes those of keys gone, and removes the old directory. A payload equal to what
 * ..data holds is not written at all, as the kubelet does (shouldWritePayload).
 */
#ifndef LK_TEST_KUBELETVOL_H
#define LK_TEST_KUBELETVOL_H

#include <stddef.h>

/* Writes (or updates) the volume at dir (created, mode 0755, when missing) with n keys and
 * their values (NUL-terminated text), files of mode 0644 as the kubelet's default. Keys
 * are plain file names (no '/', not beginning with ".."). Returns 0 (swapped), 1 (the
 * payload is what the volume holds: nothing written), or -errno with what failed on
 * stderr. */
int t_kubelet_write(const char *dir, const char *const keys[], const char *const values[],
		    size_t n);

/* The timestamped directory ..data names now, into out; 0 or -errno. */
int t_kubelet_current(const char *dir, char *out, size_t outlen);

#endif
