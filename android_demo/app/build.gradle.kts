plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.edgekit.demo"
    compileSdk = 34

    defaultConfig {
        applicationId = "dev.edgekit.demo"
        minSdk = 24
        targetSdk = 34
        versionCode = 1
        versionName = "0.1"
    }
    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
    // Keep .tflite assets uncompressed so they can be memory-mapped, as a shipping app would.
    androidResources {
        noCompress += "tflite"
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
}

// LiteRT 1.4.x: the Interpreter API (org.tensorflow.lite.*) with XNNPACK on/off and the GPU delegate.
// LiteRT 2.x moves to the CompiledModel API and its Interpreter is CPU-only.
val litertVersion = "1.4.1"

dependencies {
    implementation("com.google.ai.edge.litert:litert:$litertVersion")
    implementation("com.google.ai.edge.litert:litert-gpu:$litertVersion")
    implementation("com.google.ai.edge.litert:litert-gpu-api:$litertVersion")
}
