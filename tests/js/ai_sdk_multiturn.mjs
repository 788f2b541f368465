// The Vercel AI SDK's default OpenAI provider (the Responses API) against a robutler
// server: two turns with a tool. Usage: node ai_sdk_multiturn.mjs BASE_URL MODEL
// Prints one JSON line: what each turn said, and the request bodies it sent.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, tool } from "ai";
import { z } from "zod";

const [baseURL, model] = process.argv.slice(2);
const bodies = [];
const recordingFetch = async (url, init) => {
  if (init && typeof init.body === "string") bodies.push(JSON.parse(init.body));
  return fetch(url, init);
};
const openai = createOpenAI({ baseURL, apiKey: "unused", fetch: recordingFetch });
const tools = {
  get_weather: tool({
    description: "The weather in a city",
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => `sunny in ${city}`,
  }),
};
const first = await generateText({
  model: openai(model),
  tools,
  stopWhen: stepCountIs(4),
  prompt: "What is the weather in Paris?",
});
const messages = [
  { role: "user", content: "What is the weather in Paris?" },
  ...first.response.messages,
  { role: "user", content: "And in Oslo?" },
];
const second = await generateText({ model: openai(model), tools, stopWhen: stepCountIs(4), messages });
console.log(JSON.stringify({ first: first.text, second: second.text, bodies }));
