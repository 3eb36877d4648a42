// OpenASR demo: an AudioWorklet that turns microphone audio into 16 kHz PCM s16le frames.
//
// Runs on the audio rendering thread. Input: the AudioContext's rate (usually 44.1 or 48 kHz),
// any channel count (averaged to mono). Output, via this.port: {pcm: ArrayBuffer, level: dBFS}
// every `frameMs` (default 100 ms, i.e. 3200 bytes), sent by the page as binary WebSocket
// frames (PROTOCOL.md "Audio": pcm_s16le, mono).
//
// Downsampling is a streaming windowed-sinc low-pass + interpolation, so speech keeps its
// consonants and nothing aliases; a plain "take every third sample" folds noise above 8 kHz
// back into the speech band.

const HALF_TAPS = 24; // kernel half-width, in output-rate samples
const PHASES = 256; // the kernel is tabulated at this many fractional offsets

class PcmDownsampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.targetRate = opts.targetRate || 16000;
    this.ratio = sampleRate / this.targetRate; // input samples per output sample (>= 1)
    this.frameSamples = Math.round((this.targetRate * (opts.frameMs || 100)) / 1000);
    // Cut-off a little below the target Nyquist, relative to the input rate.
    this.cutoff = (0.5 * 0.92) / Math.max(1, this.ratio);
    this.half = Math.ceil(HALF_TAPS * Math.max(1, this.ratio));
    // Input history; starts with `half` zeros so the first output has its left context.
    this.buf = new Float32Array(4096);
    this.len = this.half;
    this.pos = this.half; // input index (fractional) of the next output sample
    // taps[p * width + j]: kernel weight of input centre - half + 1 + j at fraction p / PHASES.
    this.width = 2 * this.half;
    this.taps = new Float32Array((PHASES + 1) * this.width);
    for (let p = 0; p <= PHASES; p++) {
      for (let j = 0; j < this.width; j++) {
        this.taps[p * this.width + j] = this.kernel(j - this.half + 1 - p / PHASES);
      }
    }
    this.out = new Int16Array(this.frameSamples);
    this.outLen = 0;
    this.sumSquares = 0;
    this.stopped = false;
    this.port.onmessage = (event) => {
      if (event.data === "flush") this.flush();
      if (event.data === "stop") this.stopped = true;
    };
  }

  kernel(x) {
    // Windowed sinc (Blackman) evaluated at distance x input samples.
    if (Math.abs(x) >= this.half) return 0;
    const w = 0.42 + 0.5 * Math.cos((Math.PI * x) / this.half) + 0.08 * Math.cos((2 * Math.PI * x) / this.half);
    if (x === 0) return 2 * this.cutoff * w;
    const t = 2 * Math.PI * this.cutoff * x;
    return (2 * this.cutoff * Math.sin(t) * w) / t;
  }

  append(samples) {
    if (this.len + samples.length > this.buf.length) {
      const bigger = new Float32Array(Math.max(this.buf.length * 2, this.len + samples.length));
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    this.buf.set(samples, this.len);
    this.len += samples.length;
  }

  emit(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.sumSquares += clipped * clipped;
    this.out[this.outLen++] = clipped < 0 ? clipped * 32768 : clipped * 32767;
    if (this.outLen === this.frameSamples) this.post();
  }

  post() {
    if (this.outLen === 0) return;
    const pcm = this.out.slice(0, this.outLen);
    const rms = Math.sqrt(this.sumSquares / this.outLen);
    const level = rms > 0 ? 20 * Math.log10(rms) : -100;
    this.port.postMessage({ pcm: pcm.buffer, level }, [pcm.buffer]);
    this.outLen = 0;
    this.sumSquares = 0;
  }

  resample() {
    // Emit every output sample whose kernel lies inside the buffered input.
    while (Math.floor(this.pos) + this.half < this.len) {
      const centre = Math.floor(this.pos);
      const row = Math.round((this.pos - centre) * PHASES) * this.width;
      const first = centre - this.half + 1;
      let acc = 0;
      for (let j = 0; j < this.width; j++) acc += this.buf[first + j] * this.taps[row + j];
      this.emit(acc);
      this.pos += this.ratio;
    }
    // Keep only the left context the next output needs.
    const keepFrom = Math.floor(this.pos) - this.half;
    if (keepFrom > 0) {
      this.buf.copyWithin(0, keepFrom, this.len);
      this.len -= keepFrom;
      this.pos -= keepFrom;
    }
  }

  flush() {
    // The end of the recording: pad with silence so the last samples come out, then post.
    this.append(new Float32Array(this.half + 1));
    this.resample();
    this.post();
    this.port.postMessage({ flushed: true });
  }

  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    if (input && input.length > 0 && input[0].length > 0) {
      let mono = input[0];
      if (input.length > 1) {
        mono = new Float32Array(input[0].length);
        for (const channel of input) {
          for (let i = 0; i < channel.length; i++) mono[i] += channel[i] / input.length;
        }
      }
      this.append(mono);
      this.resample();
    }
    return true;
  }
}

registerProcessor("pcm-downsampler", PcmDownsampler);
