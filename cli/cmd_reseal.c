/* cmd_reseal.c — `latchkey reseal --key DIR`: opens every value of a SealedSecret with
 * the keys in DIR and seals it again with the newest key of its kind, in memory only. */
#include "cli/seal.h"

int
cmd_reseal(int argc, char **argv)
{
	return seal_unseal_main(argc, argv, true);
}
