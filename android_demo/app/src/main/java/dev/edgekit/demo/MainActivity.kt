package dev.edgekit.demo

import android.app.Activity
import android.os.Bundle
import android.widget.ScrollView
import android.widget.TextView
import java.io.File
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.channels.FileChannel
import java.util.Locale
import kotlin.concurrent.thread

/**
 * Runs Benchmark on a background thread when launched, shows the latency, logs each run (tag EdgekitBench).
 *
 * Intent extras (all optional):
 *   --es model /data/local/tmp/edgekit/model.tflite   a pushed file; default: assets/model.tflite
 *   --es delegate cpu|xnnpack|gpu|nnapi   --ei threads 4   --ei warmup 5   --ei runs 50
 */
class MainActivity : Activity() {
    private lateinit var status: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        status = TextView(this).apply { setPadding(32, 32, 32, 32); textSize = 16f }
        setContentView(ScrollView(this).apply { addView(status) })
        val extras = intent.extras
        val settings = BenchSettings(
            delegate = extras?.getString("delegate") ?: "xnnpack",
            threads = extras?.getInt("threads", 4) ?: 4,
            warmup = extras?.getInt("warmup", 5) ?: 5,
            runs = extras?.getInt("runs", 50) ?: 50,
        )
        val path = extras?.getString("model")
        status.text = "running ${settings.runs} inferences (${settings.delegate}, ${settings.threads} threads)..."
        thread(name = "edgekit-bench") {
            val text = try {
                val result = Benchmark.run(loadModel(path), settings)
                String.format(
                    Locale.US, "%s\n%s, %d threads\ninit %.2f ms\np50 %.3f ms  p90 %.3f ms  p99 %.3f ms\n(%d runs)",
                    path ?: "assets/model.tflite", settings.delegate, settings.threads, result.initMs,
                    result.percentile(50.0), result.percentile(90.0), result.percentile(99.0), result.runMs.size,
                )
            } catch (e: Exception) {
                Benchmark.log("EDGEKIT_ERROR %s", "${e.javaClass.simpleName}: ${e.message}".replace('\n', ' '))
                "failed: ${e.message}"
            }
            runOnUiThread { status.text = text }
        }
    }

    /** Memory-maps the model from a file path, or from the (uncompressed) asset model.tflite. */
    private fun loadModel(path: String?): ByteBuffer {
        if (path != null) {
            FileInputStream(File(path)).channel.use { channel ->
                return channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size())
            }
        }
        assets.openFd("model.tflite").use { fd ->
            FileInputStream(fd.fileDescriptor).channel.use { channel ->
                return channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
            }
        }
    }
}
