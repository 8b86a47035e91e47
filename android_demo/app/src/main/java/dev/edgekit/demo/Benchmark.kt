package dev.edgekit.demo

import android.util.Log
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.GpuDelegate
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.Locale
import kotlin.random.Random

/** Settings of one benchmark: read from the launching intent's extras (see MainActivity). */
data class BenchSettings(
    val delegate: String = "xnnpack",  // cpu (XNNPACK off) | xnnpack | gpu | nnapi
    val threads: Int = 4,
    val warmup: Int = 5,
    val runs: Int = 50,
)

/** What a run measured, in milliseconds. */
data class BenchResult(val initMs: Double, val runMs: List<Double>) {
    fun percentile(p: Double): Double {
        val sorted = runMs.sorted()
        val rank = p / 100.0 * (sorted.size - 1)
        val low = rank.toInt()
        val high = minOf(low + 1, sorted.size - 1)
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low)
    }
}

/**
 * Loads the model, runs `warmup` untimed and `runs` timed inferences on random input, and logs one line
 * per step in the format edgekit's adb runner parses (edgekit/runners/adb.py, parse_demo_log):
 *
 *   EDGEKIT_INIT ms=12.345 delegate=xnnpack threads=4 model_bytes=41720
 *   EDGEKIT_RUN i=0 ms=1.2345
 *   EDGEKIT_DONE runs=50 p50=1.2000
 *   EDGEKIT_ERROR <message>           (instead, when something fails)
 */
object Benchmark {
    const val TAG = "EdgekitBench"

    fun run(model: ByteBuffer, settings: BenchSettings): BenchResult {
        var gpu: GpuDelegate? = null
        val options = Interpreter.Options().setNumThreads(settings.threads)
        when (settings.delegate) {
            "cpu" -> options.setUseXNNPACK(false)
            "xnnpack" -> options.setUseXNNPACK(true)
            "gpu" -> {
                gpu = GpuDelegate()
                options.addDelegate(gpu)
            }
            "nnapi" -> options.setUseNNAPI(true)
            else -> throw IllegalArgumentException("unknown delegate ${settings.delegate}")
        }
        val start = System.nanoTime()
        val interpreter = Interpreter(model, options)
        interpreter.allocateTensors()
        val initMs = (System.nanoTime() - start) / 1e6
        log("EDGEKIT_INIT ms=%.3f delegate=%s threads=%d model_bytes=%d",
            initMs, settings.delegate, settings.threads, model.capacity())
        try {
            val input = randomBuffer(interpreter.getInputTensor(0).numBytes())
            val output = ByteBuffer.allocateDirect(interpreter.getOutputTensor(0).numBytes())
                .order(ByteOrder.nativeOrder())
            repeat(settings.warmup) {
                input.rewind(); output.rewind()
                interpreter.run(input, output)
            }
            val times = ArrayList<Double>(settings.runs)
            for (i in 0 until settings.runs) {
                input.rewind(); output.rewind()
                val t0 = System.nanoTime()
                interpreter.run(input, output)
                val ms = (System.nanoTime() - t0) / 1e6
                times.add(ms)
                log("EDGEKIT_RUN i=%d ms=%.4f", i, ms)
            }
            val result = BenchResult(initMs, times)
            log("EDGEKIT_DONE runs=%d p50=%.4f", times.size, result.percentile(50.0))
            return result
        } finally {
            interpreter.close()
            gpu?.close()
        }
    }

    /** Random bytes: any input dtype gets values in range, and no kernel sees an all-zero fast path. */
    private fun randomBuffer(bytes: Int): ByteBuffer {
        val buffer = ByteBuffer.allocateDirect(bytes).order(ByteOrder.nativeOrder())
        val random = Random(0)
        while (buffer.remaining() >= 4) buffer.putFloat(random.nextFloat() * 2f - 1f)
        while (buffer.hasRemaining()) buffer.put(random.nextInt(-128, 128).toByte())
        buffer.rewind()
        return buffer
    }

    fun log(format: String, vararg args: Any) {
        Log.i(TAG, String.format(Locale.US, format, *args))
    }
}
