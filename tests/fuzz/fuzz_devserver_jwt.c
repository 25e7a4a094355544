/* fuzz_devserver_jwt.c — the service-account JWT decoder of `latchkey dev`
 * (devserver/jwt.c), and signature checking of whatever decodes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devserver/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A P-256 public key: verification runs, and always fails on fuzzed input. */
static const char PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEa/o94lVnoBNdSft1y64L0nypWw+Q\n"
    "DL1rVgF94SL+amw+6Iusb+oN4l/2ltaPBPdpGjNUEwHS199HGATb6hCwbg==\n"
    "-----END PUBLIC KEY-----\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dev_jwt jwt;
	struct lk_error err;
	unsigned char *out;

	if (dev_jwt_decode((const char *)data, size, &jwt, &err) == 0 &&
	    dev_jwt_verify(&jwt, PEM, sizeof(PEM) - 1, &err) == 0)
		err.code = 0; /* a valid signature: nothing more to exercise */
	dev_jwt_clear(&jwt);
	if (size <= DEV_JWT_MAX) {
		out = malloc(size * 3 / 4 + 1);
		if (out != NULL)
			(void)dev_base64url_decode((const char *)data, size, out);
		free(out);
	}
	return 0;
}
