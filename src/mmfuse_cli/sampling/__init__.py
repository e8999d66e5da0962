"""The few-step DDIM sampler with joint observation correction: observations, learned schedule, correction, the sampler with its step(), the flip ensemble. Knows no network class."""
