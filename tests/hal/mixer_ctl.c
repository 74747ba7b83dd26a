/*
 * A mixer in user space, for tests on machines without sound support: an ALSA external
 * control plugin (libasound's ctl_ext SDK) with one stereo integer control,
 * "Speaker Playback Volume" (range 0..`max`, default 63), which libasound's simple mixer shows
 * as the control `Speaker` with a playback volume. Each write is appended to `file` as
 * "left right\n", so a test sees what the HAL set.
 *
 * Built by tests/hal/test_alsa_libasound.py (`cc -shared -fPIC ... -lasound`) and used as
 *   ctl_type.doorline_mixer { lib "<dir>/libasound_module_ctl_doorline_mixer.so" }
 *   ctl.testmixer { type doorline_mixer file "<path>" max 63 }
 */
#include <alsa/asoundlib.h>
#include <alsa/control_external.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONTROL "Speaker Playback Volume"

typedef struct {
	snd_ctl_ext_t ext;
	int pipe[2];          /* the poll descriptor: never readable, no events are sent */
	long max;
	long value[2];
	char *file;
} mixer_t;

static int elem_count(snd_ctl_ext_t *ext)
{
	(void)ext;
	return 1;
}

static int elem_list(snd_ctl_ext_t *ext, unsigned int offset, snd_ctl_elem_id_t *id)
{
	(void)ext;
	if (offset != 0)
		return -EINVAL;
	snd_ctl_elem_id_set_interface(id, SND_CTL_ELEM_IFACE_MIXER);
	snd_ctl_elem_id_set_name(id, CONTROL);
	return 0;
}

static snd_ctl_ext_key_t find_elem(snd_ctl_ext_t *ext, const snd_ctl_elem_id_t *id)
{
	(void)ext;
	if (snd_ctl_elem_id_get_interface(id) == SND_CTL_ELEM_IFACE_MIXER &&
	    !strcmp(snd_ctl_elem_id_get_name(id), CONTROL))
		return 0;
	return SND_CTL_EXT_KEY_NOT_FOUND;
}

static int get_attribute(snd_ctl_ext_t *ext, snd_ctl_ext_key_t key, int *type,
			 unsigned int *access, unsigned int *count)
{
	(void)ext;
	if (key != 0)
		return -EINVAL;
	*type = SND_CTL_ELEM_TYPE_INTEGER;
	*access = SND_CTL_EXT_ACCESS_READWRITE;
	*count = 2;
	return 0;
}

static int get_integer_info(snd_ctl_ext_t *ext, snd_ctl_ext_key_t key, long *imin, long *imax,
			    long *istep)
{
	mixer_t *mixer = ext->private_data;

	if (key != 0)
		return -EINVAL;
	*imin = 0;
	*imax = mixer->max;
	*istep = 1;
	return 0;
}

static int read_integer(snd_ctl_ext_t *ext, snd_ctl_ext_key_t key, long *value)
{
	mixer_t *mixer = ext->private_data;

	if (key != 0)
		return -EINVAL;
	value[0] = mixer->value[0];
	value[1] = mixer->value[1];
	return 0;
}

static int write_integer(snd_ctl_ext_t *ext, snd_ctl_ext_key_t key, long *value)
{
	mixer_t *mixer = ext->private_data;
	FILE *out;

	if (key != 0)
		return -EINVAL;
	mixer->value[0] = value[0];
	mixer->value[1] = value[1];
	if (mixer->file && (out = fopen(mixer->file, "a")) != NULL) {
		fprintf(out, "%ld %ld\n", value[0], value[1]);
		fclose(out);
	}
	return 1;
}

static int read_event(snd_ctl_ext_t *ext, snd_ctl_elem_id_t *id, unsigned int *event_mask)
{
	(void)ext;
	(void)id;
	(void)event_mask;
	return -EAGAIN;
}

static void mixer_close(snd_ctl_ext_t *ext)
{
	mixer_t *mixer = ext->private_data;

	close(mixer->pipe[0]);
	close(mixer->pipe[1]);
	free(mixer->file);
	free(mixer);
}

static const snd_ctl_ext_callback_t mixer_callbacks = {
	.elem_count = elem_count,
	.elem_list = elem_list,
	.find_elem = find_elem,
	.get_attribute = get_attribute,
	.get_integer_info = get_integer_info,
	.read_integer = read_integer,
	.write_integer = write_integer,
	.read_event = read_event,
	.close = mixer_close,
};

SND_CTL_PLUGIN_DEFINE_FUNC(doorline_mixer)
{
	snd_config_iterator_t i, next;
	const char *file = NULL;
	long max = 63;
	mixer_t *mixer;
	int err;

	(void)root;
	snd_config_for_each(i, next, conf) {
		snd_config_t *node = snd_config_iterator_entry(i);
		const char *id;

		if (snd_config_get_id(node, &id) < 0)
			continue;
		if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint"))
			continue;
		if (!strcmp(id, "file") && snd_config_get_string(node, &file) == 0)
			continue;
		if (!strcmp(id, "max") && snd_config_get_integer(node, &max) == 0)
			continue;
		SNDERR("doorline_mixer: unknown or bad field %s", id);
		return -EINVAL;
	}
	mixer = calloc(1, sizeof(*mixer));
	if (!mixer)
		return -ENOMEM;
	if (pipe(mixer->pipe) < 0) {
		free(mixer);
		return -errno;
	}
	mixer->max = max;
	mixer->value[0] = mixer->value[1] = max;
	mixer->file = file ? strdup(file) : NULL;
	mixer->ext.version = SND_CTL_EXT_VERSION;
	mixer->ext.card_idx = 0;
	strncpy(mixer->ext.id, "doorline", sizeof(mixer->ext.id) - 1);
	strncpy(mixer->ext.driver, "doorline", sizeof(mixer->ext.driver) - 1);
	strncpy(mixer->ext.name, "doorline test mixer", sizeof(mixer->ext.name) - 1);
	strncpy(mixer->ext.longname, "doorline test mixer", sizeof(mixer->ext.longname) - 1);
	strncpy(mixer->ext.mixername, "doorline test mixer", sizeof(mixer->ext.mixername) - 1);
	mixer->ext.poll_fd = mixer->pipe[0];
	mixer->ext.callback = &mixer_callbacks;
	mixer->ext.private_data = mixer;
	err = snd_ctl_ext_create(&mixer->ext, name, mode);
	if (err < 0) {
		mixer_close(&mixer->ext);
		return err;
	}
	*handlep = mixer->ext.handle;
	return 0;
}

SND_CTL_PLUGIN_SYMBOL(doorline_mixer);
