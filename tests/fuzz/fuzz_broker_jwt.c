/* fuzz_broker_jwt.c — the service account the broker's online check reads from a
 * Kubernetes JWT's claims (broker/online.c), without a signature check. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "broker/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char ns[64], name[64];

	if (broker_jwt_service_account((const char *)data, size, ns, sizeof(ns), name,
				       sizeof(name)) == 0 &&
	    (strlen(ns) >= sizeof(ns) || strlen(name) >= sizeof(name) || ns[0] == '\0'))
		__builtin_trap();
	return 0;
}
