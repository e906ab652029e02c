// cmd_info.c: `duovid info MODEL_DIR`: architecture, parameter count, dtypes, context length.
#include "apps/app_common.h"
#include "apps/args.h"
#include "apps/cli.h"

#include "core/dv_error.h"
#include "core/dv_json.h"
#include "core/dv_safetensors.h"
#include "vlm/dv_vlm.h"
#include "llm/dv_llm_config.h"
#include "llm/dv_template.h"

#include <sys/stat.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: duovid info MODEL_DIR [--json]   (duovid info VIDEO describes a video file)\n\n"
               "Describes a Hugging Face model folder: architecture, parameters, tensor dtypes, context length.\n"
               "Every tensor is validated (offsets, sizes) but no weights are read.\n\n"
               "  --json     one JSON object on stdout instead of aligned lines\n"
               "  -h, --help this help\n");
}

static int info_model(int argc, char **argv) {
    int json;
    const char *dir;
    int a = dv_arg_info(argc, argv, usage, "MODEL_DIR", &dir, &json);
    if (a) return a < 0;
    if (dv_app_check_model_dir(dir)) return 1;
    dv_llm_config cfg;
    dv_safetensors *st = NULL;
    if (dv_llm_config_load(dir, &cfg) || dv_safetensors_open(dir, &st)) {
        dv_app_error();
        return 1;
    }
    int64_t n_params = 0, by_dtype[DV_DTYPE_COUNT] = {0};
    for (int i = 0; i < dv_safetensors_count(st); i++) {
        const dv_st_tensor *t = dv_safetensors_at(st, i);
        int64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) n *= t->shape[d];
        n_params += n;
        by_dtype[t->dtype] += n;
    }
    char dtypes[128] = "";
    for (int d = 0; d < DV_DTYPE_COUNT; d++)
        if (by_dtype[d])
            snprintf(dtypes + strlen(dtypes), sizeof dtypes - strlen(dtypes), "%s%s", dtypes[0] ? "+" : "",
                     dv_dtype_name((dv_dtype)d));
    double gib = (double)dv_safetensors_total_bytes(st) / (1024.0 * 1024 * 1024);
    // LLaVA folders: the vision side and the prompt format the video commands will use
    char vision[400] = "", tpl[160] = "", outer[80] = "";
    cJSON *root = NULL;
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    if (!dv_json_load(cfg_path, &root) && cJSON_GetObjectItemCaseSensitive(root, "vision_config")) {
        // the checkpoint's own architecture, when the language model is its text_config
        const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures"), *a0 = cJSON_GetArrayItem(archs, 0);
        if (cJSON_IsString(a0) && strcmp(a0->valuestring, cfg.arch_name))
            snprintf(outer, sizeof outer, "%s", a0->valuestring);
        if (dv_vlm_describe_folder(dir, vision, sizeof vision))
            snprintf(vision, sizeof vision, "unusable: %s", dv_error_message());
    }
    cJSON_Delete(root);
    dv_error_clear();
    dv_template_kind tk;
    const char *why;
    if (!dv_template_detect(dir, &tk, &why)) snprintf(tpl, sizeof tpl, "%s (%s)", dv_template_name(tk), why);
    char lin_l[1024], attn_l[1024];
    dv_llm_config_layers_str(&cfg, 1, lin_l, sizeof lin_l);
    dv_llm_config_layers_str(&cfg, 0, attn_l, sizeof attn_l);
    if (json) {
        if (cfg.n_linear_layers)
            printf("{\"linear_layers\":\"%s\",\"attention_layers\":\"%s\",\"mtp_layers_skipped\":%d,"
                   "\"rotary_dim\":%d,",
                   lin_l, attn_l, cfg.n_mtp_layers, cfg.rotary_dim);
        if (cfg.n_experts)
            printf("%s\"experts\":%d,\"experts_per_token\":%d,\"expert_intermediate_size\":%d,"
                   "\"shared_expert_intermediate_size\":%d,",
                   cfg.n_linear_layers ? "" : "{", cfg.n_experts, cfg.n_experts_used, cfg.moe_intermediate_size,
                   cfg.intermediate_size);
        cJSON *vs = cJSON_CreateString(vision), *ts = cJSON_CreateString(tpl);
        char *vj = cJSON_PrintUnformatted(vs), *tj = cJSON_PrintUnformatted(ts);
        printf("%s\"vision\":%s,\"prompt_format\":%s,", cfg.n_linear_layers || cfg.n_experts ? "" : "{", vj ? vj : "\"\"",
               tj ? tj : "\"\"");
        free(vj);
        free(tj);
        cJSON_Delete(vs);
        cJSON_Delete(ts);
        printf("\"architecture\":\"%s\",\"parameters\":%lld,\"dtype\":\"%s\",\"weights_gib\":%.4f,"
               "\"context_length\":%d,\"layers\":%d,\"hidden_size\":%d,\"intermediate_size\":%d,"
               "\"heads\":%d,\"kv_heads\":%d,\"head_dim\":%d,\"vocab_size\":%d,\"rope_theta\":%g,"
               "\"rope_type\":\"%s\",\"tied_embeddings\":%s,\"tensors\":%d,\"checkpoint_architecture\":\"%s\"}\n",
               cfg.arch_name, (long long)n_params, dtypes, gib, cfg.max_position_embeddings, cfg.n_layers,
               cfg.hidden_size, cfg.intermediate_size, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.vocab_size,
               cfg.rope_theta, cfg.rope_type, cfg.tie_word_embeddings ? "true" : "false", dv_safetensors_count(st),
               *outer ? outer : cfg.arch_name);
    } else {
        printf("model:          %s\n", dir);
        if (*outer) printf("architecture:   %s (the text model of %s)\n", cfg.arch_name, outer);
        else printf("architecture:   %s\n", cfg.arch_name);
        printf("parameters:     %lld (%.2fB)\n", (long long)n_params, (double)n_params / 1e9);
        printf("dtype:          %s (%.2f GiB of weights in %d tensors)\n", dtypes, gib, dv_safetensors_count(st));
        printf("context length: %d\n", cfg.max_position_embeddings);
        printf("layers:         %d\n", cfg.n_layers);
        if (cfg.n_linear_layers) {
            const dv_llm_linear_config *k = &cfg.lin;
            printf("  linear:       %d Gated DeltaNet layers (%s): conv kernel %d, %d key heads x %d, %d value heads "
                   "x %d, float32 recurrent state (no KV cache)\n",
                   cfg.n_linear_layers, lin_l, k->conv_kernel, k->n_k_heads, k->k_head_dim, k->n_v_heads,
                   k->v_head_dim);
            printf("  attention:    %d gated attention layers (%s): the KV cache and DuoAttention patterns cover "
                   "these only\n",
                   cfg.n_attn_layers, attn_l);
        }
        if (cfg.n_mtp_layers)
            printf("  mtp:          %d multi-token-prediction layer(s) in the checkpoint: skipped (not needed for "
                   "answers)\n",
                   cfg.n_mtp_layers);
        if (cfg.n_experts)
            printf("hidden size:    %d\nexperts:        %d routed experts of %d, top %d per token (renormalised "
                   "softmax), plus a shared expert of %d with a sigmoid gate\n",
                   cfg.hidden_size, cfg.n_experts, cfg.moe_intermediate_size, cfg.n_experts_used, cfg.intermediate_size);
        else
            printf("hidden size:    %d (intermediate %d)\n", cfg.hidden_size, cfg.intermediate_size);
        printf("attention:      %d heads, %d KV heads (%s), head dim %d\n", cfg.n_heads, cfg.n_kv_heads,
               cfg.n_kv_heads == cfg.n_heads ? "MHA" : "GQA", cfg.head_dim);
        printf("vocabulary:     %d%s\n", cfg.vocab_size, cfg.tie_word_embeddings ? " (tied embeddings)" : "");
        printf("rope:           theta %g, %s", cfg.rope_theta, cfg.rope_type);
        if (strcmp(cfg.rope_type, "default")) printf(" (factor %g)", cfg.rope_scaling.factor);
        if (cfg.rotary_dim != cfg.head_dim) printf(", on the first %d of %d dims per head", cfg.rotary_dim, cfg.head_dim);
        printf("\n");
        if (*vision) printf("vision:         %s\n", vision);
        printf("prompt format:  %s\n", tpl);
    }
    dv_safetensors_free(st);
    return 0;
}

// `duovid info PATH`: a folder is a model, a file is a video.
int dv_cmd_info(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (argv[i][0] != '-' && stat(argv[i], &sb) == 0 && S_ISREG(sb.st_mode)) return dv_cmd_info_video(argc, argv);
    }
    return info_model(argc, argv);
}
