/* replay.c — runs a fuzz target over its corpus without libFuzzer, so that `make check`
 * replays the seeds and every crash input kept there.
 *
 * usage: fuzz_X [DIR|FILE ...]; with no argument, tests/fuzz/corpus/fuzz_X/. */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Corpus files larger than this are skipped: fuzz inputs are small. */
#define REPLAY_FILE_MAX (4u << 20)

static int
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data;
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	data = malloc(REPLAY_FILE_MAX);
	if (data == NULL) {
		fclose(f);
		return -1;
	}
	n = fread(data, 1, REPLAY_FILE_MAX, f);
	fclose(f);
	/* An exact-size copy, so that ASan catches reads past the input. */
	uint8_t *exact = malloc(n ? n : 1);
	if (exact == NULL) {
		free(data);
		return -1;
	}
	memcpy(exact, data, n);
	free(data);
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	return 0;
}

static int
run_path(const char *path, unsigned *count)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return run_file(path);
	}
	d = opendir(path);
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char full[4096];
		if (de->d_name[0] == '.')
			continue;
		snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
		if (run_path(full, count) < 0)
			r = -1;
	}
	closedir(d);
	return r;
}

int
main(int argc, char **argv)
{
	unsigned count = 0;
	char dir[4096];
	int r = 0;

	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			if (run_path(argv[i], &count) < 0)
				r = 1;
	} else {
		char *name = strdup(argv[0]);
		const char *root = getenv("LATCHKEY_SRC");
		snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", root ? root : ".", basename(name));
		free(name);
		if (run_path(dir, &count) < 0)
			r = 1;
	}
	printf("%s: replayed %u inputs\n", argv[0], count);
	if (count == 0) {
		fprintf(stderr, "no corpus inputs found\n");
		return 1;
	}
	return r;
}
