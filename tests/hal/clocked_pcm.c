/*
 * A sound card with a real clock, in user space, for tests on machines without sound support
 * (no snd-aloop): an ALSA external I/O plugin (libasound's ioplug SDK) whose hardware pointer
 * is CLOCK_MONOTONIC times the rate since the stream started.
 *
 *   capture   a `hz` tone (0: silence), continuous across reads, at `amplitude`
 *   playback  consumed at the same clock and thrown away
 *
 * `open_delay_ms N` makes every open of the PCM take N ms (it sleeps in the open, as a busy hw
 * device opened without SND_PCM_NONBLOCK waits in the kernel, or a plugin whose server hangs);
 * `open_mark "PATH"` appends one line per open to PATH, the CLOCK_MONOTONIC seconds when the
 * open began, so a test knows when the stall started.
 *
 * Like a kernel driver, it reports an overrun when the application leaves more than a buffer
 * unread, and an underrun when the clock has consumed more than was written; libasound's
 * ioplug then puts the PCM into SND_PCM_STATE_XRUN and the next read or write fails with
 * -EPIPE, exactly as with a card. The poll descriptor is a timerfd ticking once a period.
 *
 * Built by tests/hal/test_alsa_libasound.py (`cc -shared -fPIC ... -lasound -lm`) and used as
 *   pcm_type.doorline_clock { lib "<dir>/libasound_module_pcm_doorline_clock.so" }
 *   pcm.clocked { type doorline_clock hz 1000 }
 */
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	snd_pcm_ioplug_t io;
	int timer;
	int running;
	double started;            /* CLOCK_MONOTONIC seconds when the stream started */
	long hz;
	long amplitude;
	unsigned long long phase;  /* capture samples made so far: the tone's phase */
} clock_pcm_t;

static double monotonic_s(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec + now.tv_nsec / 1e9;
}

static snd_pcm_uframes_t clock_frames(clock_pcm_t *pcm)
{
	if (!pcm->running)
		return 0;
	return (snd_pcm_uframes_t)((monotonic_s() - pcm->started) * pcm->io.rate);
}

static void arm(clock_pcm_t *pcm, double seconds)
{
	struct itimerspec spec;

	memset(&spec, 0, sizeof(spec));
	spec.it_interval.tv_sec = (time_t)seconds;
	spec.it_interval.tv_nsec = (long)((seconds - (time_t)seconds) * 1e9);
	spec.it_value = spec.it_interval;
	timerfd_settime(pcm->timer, 0, &spec, NULL);
}

static int clock_start(snd_pcm_ioplug_t *io)
{
	clock_pcm_t *pcm = io->private_data;

	pcm->started = monotonic_s();
	pcm->running = 1;
	arm(pcm, (double)io->period_size / io->rate);
	return 0;
}

static int clock_stop(snd_pcm_ioplug_t *io)
{
	clock_pcm_t *pcm = io->private_data;

	pcm->running = 0;
	arm(pcm, 0);
	return 0;
}

static int clock_prepare(snd_pcm_ioplug_t *io)
{
	return clock_stop(io);  /* after an xrun too: the clock restarts with the stream */
}

static snd_pcm_sframes_t clock_pointer(snd_pcm_ioplug_t *io)
{
	clock_pcm_t *pcm = io->private_data;
	snd_pcm_uframes_t done = clock_frames(pcm);
	uint64_t ticks;

	while (read(pcm->timer, &ticks, sizeof(ticks)) > 0)
		;  /* the timerfd is non-blocking: this only clears it */
	if (io->stream == SND_PCM_STREAM_CAPTURE) {
		if (done > io->appl_ptr + io->buffer_size)
			return -EPIPE;  /* overrun: more than a buffer captured and not read */
	} else if (done > io->appl_ptr) {
		return -EPIPE;  /* underrun: the clock played past what was written */
	}
	return done % io->buffer_size;
}

static snd_pcm_sframes_t clock_transfer(snd_pcm_ioplug_t *io,
					const snd_pcm_channel_area_t *areas,
					snd_pcm_uframes_t offset, snd_pcm_uframes_t size)
{
	clock_pcm_t *pcm = io->private_data;
	snd_pcm_uframes_t frame;
	unsigned int channel;

	if (io->stream == SND_PCM_STREAM_PLAYBACK)
		return size;
	for (frame = 0; frame < size; frame++, pcm->phase++) {
		double value = pcm->hz ? pcm->amplitude *
			sin(2 * M_PI * pcm->hz * (double)pcm->phase / io->rate) : 0;
		for (channel = 0; channel < io->channels; channel++) {
			const snd_pcm_channel_area_t *area = &areas[channel];
			int16_t *sample = (int16_t *)((char *)area->addr +
				(area->first + area->step * (offset + frame)) / 8);
			*sample = (int16_t)lrint(value);
		}
	}
	return size;
}

static int clock_poll_revents(snd_pcm_ioplug_t *io, struct pollfd *pfd, unsigned int nfds,
			      unsigned short *revents)
{
	(void)nfds;
	*revents = 0;
	if (pfd[0].revents & POLLIN)
		*revents = io->stream == SND_PCM_STREAM_CAPTURE ? POLLIN : POLLOUT;
	return 0;
}

static int clock_close(snd_pcm_ioplug_t *io)
{
	clock_pcm_t *pcm = io->private_data;

	close(pcm->timer);
	free(pcm);
	return 0;
}

static const snd_pcm_ioplug_callback_t clock_callbacks = {
	.start = clock_start,
	.stop = clock_stop,
	.prepare = clock_prepare,
	.pointer = clock_pointer,
	.transfer = clock_transfer,
	.poll_revents = clock_poll_revents,
	.close = clock_close,
};

SND_PCM_PLUGIN_DEFINE_FUNC(doorline_clock)
{
	static const unsigned int accesses[] = { SND_PCM_ACCESS_RW_INTERLEAVED };
	static const unsigned int formats[] = { SND_PCM_FORMAT_S16 };
	snd_config_iterator_t i, next;
	clock_pcm_t *pcm;
	long hz = 0, amplitude = 10000, open_delay_ms = 0;
	const char *open_mark = NULL;
	int err;

	(void)root;
	snd_config_for_each(i, next, conf) {
		snd_config_t *node = snd_config_iterator_entry(i);
		const char *id;

		if (snd_config_get_id(node, &id) < 0)
			continue;
		if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint"))
			continue;
		if (!strcmp(id, "hz") && snd_config_get_integer(node, &hz) == 0)
			continue;
		if (!strcmp(id, "amplitude") && snd_config_get_integer(node, &amplitude) == 0)
			continue;
		if (!strcmp(id, "open_delay_ms") &&
		    snd_config_get_integer(node, &open_delay_ms) == 0)
			continue;
		if (!strcmp(id, "open_mark") && snd_config_get_string(node, &open_mark) == 0)
			continue;
		SNDERR("doorline_clock: unknown or bad field %s", id);
		return -EINVAL;
	}
	if (open_mark) {
		FILE *mark = fopen(open_mark, "a");

		if (mark) {
			fprintf(mark, "%.6f\n", monotonic_s());
			fclose(mark);
		}
	}
	if (open_delay_ms > 0) {
		struct timespec delay = { open_delay_ms / 1000, (open_delay_ms % 1000) * 1000000L };

		while (nanosleep(&delay, &delay) < 0 && errno == EINTR)
			;
	}
	pcm = calloc(1, sizeof(*pcm));
	if (!pcm)
		return -ENOMEM;
	pcm->hz = hz;
	pcm->amplitude = amplitude;
	pcm->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (pcm->timer < 0) {
		free(pcm);
		return -errno;
	}
	pcm->io.version = SND_PCM_IOPLUG_VERSION;
	pcm->io.name = "doorline test clock";
	pcm->io.callback = &clock_callbacks;
	pcm->io.private_data = pcm;
	pcm->io.poll_fd = pcm->timer;
	pcm->io.poll_events = POLLIN;
	pcm->io.mmap_rw = 0;
	err = snd_pcm_ioplug_create(&pcm->io, name, stream, mode);
	if (err < 0) {
		close(pcm->timer);
		free(pcm);
		return err;
	}
	if ((err = snd_pcm_ioplug_set_param_list(&pcm->io, SND_PCM_IOPLUG_HW_ACCESS, 1,
						  accesses)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_list(&pcm->io, SND_PCM_IOPLUG_HW_FORMAT, 1,
						  formats)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&pcm->io, SND_PCM_IOPLUG_HW_CHANNELS, 1, 2)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&pcm->io, SND_PCM_IOPLUG_HW_RATE, 8000,
						    48000)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&pcm->io, SND_PCM_IOPLUG_HW_PERIOD_BYTES, 64,
						    64 * 1024)) < 0 ||
	    (err = snd_pcm_ioplug_set_param_minmax(&pcm->io, SND_PCM_IOPLUG_HW_PERIODS, 2, 64)) < 0) {
		snd_pcm_ioplug_delete(&pcm->io);
		return err;
	}
	*pcmp = pcm->io.pcm;
	return 0;
}

SND_PCM_PLUGIN_SYMBOL(doorline_clock);
