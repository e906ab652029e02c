// cli.h: the subcommands of the duovid binary and the option helpers they share.
// Each dv_cmd_* gets argv with argv[0] = the command name and returns 0 (exit 0) or nonzero (exit 1);
// it prints its own one-line error.
#ifndef DV_CLI_H
#define DV_CLI_H

int dv_cmd_ask(int argc, char **argv);
int dv_cmd_chat(int argc, char **argv);
int dv_cmd_summarize(int argc, char **argv);
int dv_cmd_serve(int argc, char **argv);
int dv_cmd_generate(int argc, char **argv);
int dv_cmd_info(int argc, char **argv);
int dv_cmd_bench(int argc, char **argv);
int dv_cmd_synth_model(int argc, char **argv);
int dv_bench_duo(int argc, char **argv);
int dv_bench_encoder(int argc, char **argv);
int dv_cmd_identify(int argc, char **argv);
int dv_cmd_pattern(int argc, char **argv);
int dv_cmd_frames(int argc, char **argv);
int dv_cmd_info_video(int argc, char **argv);
int dv_cmd_pull(int argc, char **argv);
int dv_cmd_tokenize(int argc, char **argv);
int dv_cmd_perplexity(int argc, char **argv);
int dv_cmd_eval(int argc, char **argv);
int dv_bench_tokenize(int argc, char **argv);

#endif
